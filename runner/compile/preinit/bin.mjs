#!/usr/bin/env node
// Deterministic stand-in for the `wizer` binary, run through tsx (tests run
// it so); builds run the same code bundled into one file (../componentize.ts).
// See cli.ts for the contract.
import '../../quiet-wasi-warning.mjs';
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./cli.ts');
process.exitCode = main(process.argv.slice(2));
