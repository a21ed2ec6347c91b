/**
 * Writes wit/types/: jco's TypeScript declarations of the konnector world (konnector.wit), which the host-api
 * modules type their capabilities with. Run it after editing the WIT (npm run wit-types); CI runs it with
 * `--check`, which writes nothing and fails when the checked-in declarations are not what the WIT gives.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { $init, generateTypes } from '@bytecodealliance/jco-transpile/component';

const witDir = fileURLToPath(new URL('.', import.meta.url));
const typesDir = path.join(witDir, 'types');

async function declarations(): Promise<Map<string, string>> {
  await $init;
  const source = await readFile(path.join(witDir, 'konnector.wit'), 'utf8');
  // The WIT is given as source: jco's bindgen component has no filesystem to read it from. `sync` as the loader transpiles.
  const files = generateTypes('konnector', { wit: { tag: 'source', val: source }, world: 'cozy:konnector/konnector', instantiation: { tag: 'sync' } });
  return new Map(files.map(([name, bytes]) => [name, new TextDecoder().decode(bytes)]));
}

async function checkedIn(): Promise<Map<string, string>> {
  const names = await readdir(typesDir, { recursive: true, withFileTypes: true }).catch(() => []);
  const files = names.filter((entry) => entry.isFile()).map((entry) => path.relative(typesDir, path.join(entry.parentPath, entry.name)));
  return new Map(await Promise.all(files.map(async (name) => [name, await readFile(path.join(typesDir, name), 'utf8')] as const)));
}

const wanted = await declarations();
if (process.argv.includes('--check')) {
  const present = await checkedIn();
  const stale = [...new Set([...wanted.keys(), ...present.keys()])].filter((name) => wanted.get(name) !== present.get(name));
  if (stale.length > 0) {
    console.error(`wit/types is not what wit/konnector.wit gives (${stale.join(', ')}): run npm run wit-types and commit the result`);
    process.exit(1);
  }
} else {
  await rm(typesDir, { recursive: true, force: true });
  for (const [name, text] of wanted) {
    await mkdir(path.dirname(path.join(typesDir, name)), { recursive: true });
    await writeFile(path.join(typesDir, name), text);
  }
}
