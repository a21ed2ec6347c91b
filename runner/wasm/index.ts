/**
 * Dependency-free utilities over the WebAssembly binary format: LEB128,
 * module and component framing, the sections the build rewrites, and the
 * memory cap the runner applies before compiling a guest, and the fuel
 * instrumenter. The rest of the runner imports this module only.
 */
export * from './errors.ts';
export * from './bytes.ts';
export * from './module.ts';
export * from './sections.ts';
export * from './memory-cap.ts';
export * from './data-segments.ts';
export * from './snapshot.ts';
export * from './fuel.ts';
export * from './snapshot-delta.ts';
