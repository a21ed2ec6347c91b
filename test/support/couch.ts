/**
 * The tests' CouchDB: the embedded CouchDB-API server the runner starts
 * (host-api/couchdb-server.ts), in a temporary directory of its own that goes
 * when it stops; and a look at what jobs saved there.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nano from 'nano';
import { startEmbeddedCouchDB } from '../../host-api/couchdb-server.ts';
import { databaseName } from '../../host-api/documents.ts';

export interface TestCouch {
  url: string;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

export async function startTestCouch(): Promise<TestCouch> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'test-couch-'));
  const removeData = () => rm(dataDir, { recursive: true, force: true });
  try {
    const couch = await startEmbeddedCouchDB({ dataDir });
    return {
      url: couch.url,
      async stop() {
        await couch.stop();
        await removeData();
      },
    };
  } catch (error) {
    await removeData();
    throw error;
  }
}

/** Every document of `doctype` in the instance's database, design documents aside; none when the database does not exist. */
export async function storedDocs(couchUrl: string, instance: string, doctype: string): Promise<Array<Record<string, any>>> {
  const db = nano(couchUrl).use<Record<string, any>>(decodeURIComponent(databaseName(instance, doctype)));
  const rows = await db.list({ include_docs: true }).then((answer) => answer.rows, (error: { statusCode?: number }) => {
    if (error.statusCode === 404) return [];
    throw error;
  });
  return rows.map((row) => row.doc!).filter((doc) => !doc._id.startsWith('_design/'));
}
