/**
 * A lock shared by every process of this machine, named after what it
 * guards: a Unix socket in Linux's abstract namespace (no file), bound by its
 * holder. The kernel releases it when the holder exits, however it ends, so a
 * killed build never leaves a stale lock behind; and no clock is involved,
 * which matters because a build pins Date.now while componentize-js runs.
 */
import { createServer, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const RETRY_MS = 200;

/** Runs `work` holding the lock `name`; `onWait` is called once if another holder makes it wait. */
export async function withMachineLock<T>(name: string, onWait: () => void, work: () => Promise<T>): Promise<T> {
  // Abstract sockets are Linux's alone; elsewhere builds in one process still take turns (componentize.ts).
  if (process.platform !== 'linux') return work();
  let held = await bind(`\0${name}`);
  if (!held) onWait();
  while (!held) {
    await sleep(RETRY_MS);
    held = await bind(`\0${name}`);
  }
  try {
    return await work();
  } finally {
    held.close();
  }
}

function bind(address: string): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(undefined) : reject(error)));
    server.listen({ path: address, exclusive: true }, () => resolve(server.unref()));
  });
}
