import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
const bin = '/work/main/node_modules/pouchdb-server/bin/pouchdb-server';
const extra = process.argv.slice(2);
const dir = await mkdtemp('/tmp/pb2-');
import { writeFileSync } from 'node:fs';
writeFileSync(dir + '/c.json', JSON.stringify({ log: { file: dir + '/log', level: process.env.LVL ?? 'info' } }));
const child = spawn(process.execPath, [bin, '-p', '5991', '-o', '127.0.0.1', '-d', dir, '-n', '-c', dir + '/c.json', ...extra], { stdio: ['pipe', 'inherit', 'inherit'], cwd: dir });
const url = 'http://127.0.0.1:5991';
for (;;) { try { await fetch(url); break; } catch { await sleep(50); } }
await fetch(`${url}/jobs`, { method: 'PUT' });
let doc: any = { _id: 'a', logs: [], history: [], state: 'queued', message: { account: 'x' } };
const raw: number[] = [];
for (let i = 0; i < 300; i++) { const t = performance.now(); const r = await fetch(`${url}/jobs/a`, { method: 'PUT', body: JSON.stringify(doc), headers: { 'content-type': 'application/json' } }); const j: any = await r.json(); doc = { ...doc, _rev: j.rev }; raw.push(performance.now() - t); }
raw.sort((a,b)=>a-b); console.log(extra.join(' '), 'put median', raw[150].toFixed(2), 'p95', raw[285].toFixed(2));
const gets: number[] = [];
for (let i = 0; i < 300; i++) { const t = performance.now(); await (await fetch(`${url}/jobs/a`)).json(); gets.push(performance.now() - t); }
gets.sort((a,b)=>a-b); console.log('get median', gets[150].toFixed(2));
child.kill();
