// Loading `node:wasi` prints an ExperimentalWarning on stderr, which
// componentize-js would show in every error it reports: drop that one only.
// Imported before anything loads node:wasi.
const defaultListeners = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name === 'ExperimentalWarning' && warning.message.startsWith('WASI')) return;
  for (const listener of defaultListeners) listener(warning);
});
