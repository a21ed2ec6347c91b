import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import nano from 'nano';
import { afterEach, describe, expect, it } from 'vitest';
import { CouchServerError, startEmbeddedCouchDB, type CouchServer } from '../../host-api/couchdb-server.ts';
import { documentsFor, expectDocumentsError } from './documents-helpers.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'couchdb-server-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function start(dataDir: string, port?: number): Promise<CouchServer> {
  const server = await startEmbeddedCouchDB({ dataDir, port });
  cleanups.push(() => server.stop());
  return server;
}

/** Holds a loopback port with a plain TCP listener, so nobody else can bind it. */
async function occupyPort(): Promise<number> {
  const holder = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  return (holder.address() as net.AddressInfo).port;
}

describe('startEmbeddedCouchDB', () => {
  it('serves the CouchDB API on loopback and writes its logs under dataDir', async () => {
    const dataDir = path.join(await tempDir(), 'created', 'on', 'demand');
    const server = await start(dataDir);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const welcome = (await (await fetch(`${server.url}/`)).json()) as Record<string, unknown>;
    expect(welcome['express-pouchdb']).toBe('Welcome!');
    expect((await fetch(`${server.url}/_all_dbs`)).status).toBe(200);
    const log = await readFile(path.join(dataDir, 'pouchdb-server.log'), 'utf8');
    expect(log).toContain(`pouchdb-server has started on ${server.url}/`);
  });

  it('stops: the port no longer answers, and stopping again is harmless', async () => {
    const server = await start(await tempDir());
    await server.stop();
    await expect(fetch(`${server.url}/`)).rejects.toThrow();
    await server.stop();
  });

  it('keeps the data across a restart on the same dataDir', async () => {
    const dataDir = await tempDir();
    const instance = 'alice.cozy.example';
    const first = await start(dataDir);
    const before = documentsFor(first.url, { instance });
    const saved = JSON.parse(await before.save('io.cozy.bills', '{"vendor":"Telco","amount":12}'));
    await first.stop();

    const second = await start(dataDir);
    const after = documentsFor(second.url, { instance });
    expect(JSON.parse(await after.find('io.cozy.bills', '{"vendor":"Telco"}', 10))).toEqual([saved]);
  });

  it('keeps CouchDB database names: "/" reads back as itself, a name and its "/" child live side by side', async () => {
    const dataDir = await tempDir();
    const server = await start(dataDir);
    const documents = documentsFor(server.url, { instance: 'alice.cozy.example' });
    await documents.save('io.cozy.bills', '{"vendor":"Telco","amount":12}');
    const couch = nano(server.url);
    await couch.db.create('alice-cozy-example');
    await couch.use('alice-cozy-example').insert({ _id: 'parent' });
    expect(await couch.db.list()).toEqual(expect.arrayContaining(['alice-cozy-example/io-cozy-bills', 'alice-cozy-example']));
    expect((await couch.db.get('alice-cozy-example/io-cozy-bills')).db_name).toBe('alice-cozy-example/io-cozy-bills');
    expect((await couch.use('alice-cozy-example').get('parent'))._id).toBe('parent');
    expect((await couch.use('alice-cozy-example/io-cozy-bills').list()).rows).toHaveLength(1);
    // Names CouchDB refuses are still made safe for the disk, never a path out of the data directory.
    await couch.db.create('../escape').catch(() => undefined);
    expect(await couch.db.list()).not.toContain('../escape');
    await expect(readdir(dataDir)).resolves.not.toContain('escape');
  });

  it('answers each of concurrent creations of a database in a folder not made yet', async () => {
    // pouchdb-server left a second creation racing a first one in a new folder hanging (see the launcher):
    // a race, so many rounds at once (before the fix, most of these requests got no answer).
    const server = await start(await tempDir());
    const create = (round: number) =>
      fetch(`${server.url}/${encodeURIComponent(`instance${round}-cozy-test/io-cozy-files`)}`,
        { method: 'PUT', signal: AbortSignal.timeout(5_000) }).then((res) => res.status, () => 'no answer');
    const rounds = await Promise.all(Array.from({ length: 20 }, (_, round) => Promise.all([1, 2, 3, 4, 5].map(() => create(round)))));
    const statuses = rounds.flat();
    expect(statuses.filter((status) => status !== 201 && status !== 412)).toEqual([]);
    expect(statuses.filter((status) => status === 201).length).toBeGreaterThanOrEqual(20);
  });

  it('uses a given free port, and fails clearly when the given port is taken', async () => {
    const dataDir = await tempDir();
    const busy = await occupyPort();
    const error = await startEmbeddedCouchDB({ dataDir, port: busy }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CouchServerError);
    expect((error as CouchServerError).kind).toBe('port-in-use');
    expect((error as CouchServerError).message).toContain(String(busy));

    const free = await new Promise<number>((resolve) => {
      const probe = net.createServer();
      probe.listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const server = await start(dataDir, free);
    expect(server.url).toBe(`http://127.0.0.1:${free}`);
  });

  it('makes documents calls fail as unavailable, not crash, once the server is stopped', async () => {
    const server = await start(await tempDir());
    const documents = documentsFor(server.url);
    await documents.save('io.cozy.bills', '{"vendor":"Telco"}');
    await server.stop();
    await expectDocumentsError(documents.save('io.cozy.bills', '{"vendor":"Telco"}'), 'unavailable',
      /did not answer/, new RegExp(server.url.replace(/\./g, '\\.')));
    await expectDocumentsError(documents.find('io.cozy.bills', '{}', 10), 'unavailable', /did not answer/);
    expect(documents.saved).toEqual({ 'io.cozy.bills': 1 });
  });
});
