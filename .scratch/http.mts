import { createServer } from 'node:http';
import { startEmbeddedCouchDB } from '/work/main/host-api/couchdb-server.ts';
import { mkdtemp } from 'node:fs/promises';
const server = createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"ok":true}'); });
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${(server.address() as any).port}`;
async function time(label: string, f: () => Promise<unknown>) { const t: number[] = []; for (let i = 0; i < 300; i++) { const s = performance.now(); await f(); t.push(performance.now() - s); } t.sort((a,b)=>a-b); console.log(label, t[150].toFixed(2), t[285].toFixed(2)); }
await time('raw node http GET', async () => (await fetch(url)).json());
const couch = await startEmbeddedCouchDB({ dataDir: await mkdtemp('/tmp/pb4-') });
await time('pouchdb-server GET /', async () => (await fetch(couch.url)).json());
await fetch(`${couch.url}/jobs`, { method: 'PUT' });
await fetch(`${couch.url}/jobs/a`, { method: 'PUT', body: '{"x":1}', headers: { 'content-type': 'application/json' } });
await time('pouchdb-server GET doc', async () => (await fetch(`${couch.url}/jobs/a`)).json());
await couch.stop(); server.close();
