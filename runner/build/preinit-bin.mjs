#!/usr/bin/env node
// Deterministic stand-in for the `wizer` binary: componentize-js runs it
// through its `wizerBin` option (see preinit.ts for the contract).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./preinit.ts');
process.exitCode = main(process.argv.slice(2));
