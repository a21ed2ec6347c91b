import { startEmbeddedCouchDB } from '/work/main/host-api/couchdb-server.ts';
import nano from 'nano';
import { mkdtemp } from 'node:fs/promises';
const couch = await startEmbeddedCouchDB({ dataDir: await mkdtemp('/tmp/pb-') });
const n = nano(couch.url);
await n.db.create('jobs');
const db = n.use<any>('jobs');
let doc: any = { _id: 'a', logs: [], history: [], state: 'queued', message: { account: 'x' } };
const times: number[] = [];
for (let i = 0; i < 200; i++) { const t = performance.now(); const r = await db.insert(doc); doc = { ...doc, _rev: r.rev, seq: i }; times.push(performance.now() - t); }
times.sort((a,b)=>a-b); console.log('nano put median', times[100].toFixed(2), 'p95', times[190].toFixed(2));
const gets: number[] = [];
for (let i = 0; i < 200; i++) { const t = performance.now(); await db.get('a'); gets.push(performance.now() - t); }
gets.sort((a,b)=>a-b); console.log('nano get median', gets[100].toFixed(2));
// raw fetch
const raw: number[] = [];
for (let i = 0; i < 200; i++) { const t = performance.now(); const r = await fetch(`${couch.url}/jobs/a`, { method: 'PUT', body: JSON.stringify(doc), headers: { 'content-type': 'application/json' } }); const j: any = await r.json(); doc = { ...doc, _rev: j.rev }; raw.push(performance.now() - t); }
raw.sort((a,b)=>a-b); console.log('fetch put median', raw[100].toFixed(2), 'p95', raw[190].toFixed(2));
await couch.stop();
