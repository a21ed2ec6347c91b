#!/usr/bin/env node
// Deterministic stand-in for the `wizer` binary: componentize-js runs it
// through its `wizerBin` option (see cli.ts for the contract).
import { register } from 'tsx/esm/api';

// Loading `node:wasi` prints an ExperimentalWarning on stderr, which
// componentize-js would show in every error it reports: drop that one only.
const defaultListeners = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name === 'ExperimentalWarning' && warning.message.startsWith('WASI')) return;
  for (const listener of defaultListeners) listener(warning);
});

register();
const { main } = await import('./cli.ts');
process.exitCode = main(process.argv.slice(2));
