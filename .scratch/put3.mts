import { createRequire } from 'node:module';
const require = createRequire('/work/main/node_modules/');
const PouchDB = require('pouchdb-core').plugin(require('pouchdb-adapter-leveldb'));
const { mkdtemp } = await import('node:fs/promises');
const dir = await mkdtemp('/tmp/pb3-');
const db = new PouchDB(dir + '/jobs', { adapter: 'leveldb' });
let doc: any = { _id: 'a', logs: [], history: [], state: 'queued', message: { account: 'x' } };
const t: number[] = [];
for (let i = 0; i < 300; i++) { const s = performance.now(); const r = await db.put(doc); doc = { ...doc, _rev: r.rev }; t.push(performance.now() - s); }
t.sort((a,b)=>a-b); console.log('in-process put median', t[150].toFixed(2), 'p95', t[285].toFixed(2));
const g: number[] = [];
for (let i = 0; i < 300; i++) { const s = performance.now(); await db.get('a'); g.push(performance.now() - s); }
g.sort((a,b)=>a-b); console.log('in-process get median', g[150].toFixed(2));
