// Loading `node:wasi` prints an ExperimentalWarning on stderr, which
// componentize-js would show in every error it reports, and every QuickJS
// sandbox worker and `konnector` process would print: drop that one only.
// Imported by the entry points (the `konnector` command, the sandbox workers'
// boot, a parallel build's child, the pre-initializer's) before anything loads node:wasi, which happens
// as a module is loaded, before any of the importing module's code runs.
const defaultListeners = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name === 'ExperimentalWarning' && warning.message.startsWith('WASI')) return;
  for (const listener of defaultListeners) listener(warning);
});
