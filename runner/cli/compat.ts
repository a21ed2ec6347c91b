/**
 * `konnector compat <konnector-dir>...` (`npm run compat`): how konnectors
 * written for cozy-stack fare here, unmodified. Installs nothing: each
 * directory is built as it is (its own node_modules, if any), then run once
 * offline with stand-in values for its manifest's fields, against an embedded
 * CouchDB and no network beyond the egress policy (a vendor's real site is
 * not reachable from the test machines, which is the point: every konnector
 * must end with a standard error code, never crash or hang).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedCouchDB } from '../../host-api/couchdb-server.ts';
import { readArtifact } from '../compile/artifact.ts';
import { buildKonnectors } from '../compile/parallel.ts';
import { runJob } from '../sandbox/job.ts';
import { defaultLimits, type Limits } from '../limits.ts';
import { loadArtifact } from '../sandbox/load-artifact.ts';
import type { EngineName } from '../sandbox/pool.ts';
import { readManifest } from '../compile/manifest.ts';

export interface CompatRow {
  dir: string;
  slug?: string;
  /** "ok", or the first line of why the build failed. */
  build: string;
  seconds?: number;
  megabytes?: number;
  /** The run's state and error code, or why it did not run. */
  run: string;
  /** The last error the run logged, cut short. */
  why?: string;
}

export interface CompatOptions {
  /** The engine each konnector is built for (default componentize-js). */
  engine?: EngineName;
  /** Limits of each offline run (default: the defaults, with a 60 s wall clock). */
  limits?: Limits;
  progress?: (line: string) => void;
}

const WHY_CHARS = 140;

const firstLine = (message: string) => message.split('\n').find((line) => line.trim() !== '')?.trim() ?? message;

/** Stand-in values for a manifest's fields: what a person would type, never a real credential. */
export function standInFields(fields: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(fields).map(([name, spec]) => {
      const { type, options } = (spec ?? {}) as { type?: unknown; options?: unknown };
      if (type === 'password') return [name, 'compat-password'];
      // A dropdown's value is one of its options, as the account form offers them.
      const firstOption = Array.isArray(options) ? (options[0] as { value?: unknown } | undefined)?.value : undefined;
      if (type === 'dropdown' && typeof firstOption === 'string') return [name, firstOption];
      if (type === 'email' || /mail/i.test(name)) return [name, 'compat@example.org'];
      if (type === 'date') return [name, '2026-01-01'];
      return [name, `compat-${name}`];
    }),
  );
}

export async function compatTable(dirs: string[], options: CompatOptions = {}): Promise<CompatRow[]> {
  const progress = options.progress ?? (() => {});
  const limits = options.limits ?? { ...defaultLimits, wallClockMs: 60_000 };
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'konnector-compat-'));
  try {
    const rows = new Map<string, CompatRow>();
    const buildable: string[] = [];
    for (const dir of dirs) {
      try {
        if (!(await stat(dir).catch(() => null))?.isDirectory()) throw new Error(`${dir} is not a directory`);
        rows.set(dir, { dir, slug: (await readManifest(dir)).slug, build: 'pending', run: 'not run' });
        buildable.push(dir);
      } catch (error) {
        rows.set(dir, { dir, build: firstLine((error as Error).message), run: 'not run' });
      }
    }
    progress(`building ${buildable.length} konnectors...`);
    const outcomes = await buildKonnectors(buildable, path.join(scratch, 'artifacts'), {
      engine: options.engine,
      progress: (dir, step) => progress(`${dir}: ${step}`),
    });
    const couch = await startEmbeddedCouchDB({ dataDir: path.join(scratch, 'couch') });
    try {
      for (const outcome of outcomes) {
        const row = rows.get(outcome.dir)!;
        row.seconds = outcome.seconds;
        if ('error' in outcome) {
          row.build = firstLine(outcome.error.message);
          continue;
        }
        row.build = 'ok';
        row.megabytes = outcome.result.bytes / 1e6;
        progress(`${outcome.dir}: running offline...`);
        try {
          const artifact = await readArtifact(outcome.result.out);
          let lastError: string | undefined;
          const report = await runJob(
            await loadArtifact(artifact, limits),
            { accountId: `${outcome.result.slug}-compat`, instance: 'compat.cozy.localhost', fields: standInFields(artifact.header.manifest.fields), manual: true },
            {
              couchUrl: couch.url,
              limits,
              filesDir: path.join(scratch, 'files'),
              onLog: (line) => {
                if (line.level === 'error' || line.level === 'critical') lastError = line.message;
              },
            },
          );
          row.run = report.error ? `${report.state} ${report.error}` : report.state;
          if (lastError !== undefined) row.why = firstLine(lastError).slice(0, WHY_CHARS);
        } catch (error) {
          row.run = `did not run: ${firstLine((error as Error).message)}`;
        }
      }
    } finally {
      await couch.stop();
    }
    return dirs.map((dir) => rows.get(dir)!);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The table in Markdown, one konnector a row. */
export function formatCompatTable(rows: CompatRow[]): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  return [
    '| konnector | build | seconds | MB | offline run | last error logged |',
    '|---|---|---|---|---|---|',
    ...rows.map((row) =>
      `| ${cell(row.slug ?? path.basename(row.dir))} | ${cell(row.build)} | ${row.seconds?.toFixed(1) ?? '-'} | ${row.megabytes?.toFixed(1) ?? '-'} | ${cell(row.run)} | ${cell(row.why ?? '')} |`),
  ].join('\n');
}
