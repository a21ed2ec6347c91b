#!/usr/bin/env node
// The `konnector` command: runs the TypeScript CLI through tsx's loader.
import '../runner/quiet-wasi-warning.mjs';
import { register } from 'tsx/esm/api';

register();
await import('../runner/cli/main.ts');
