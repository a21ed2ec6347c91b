import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { formatTextLine, type LogLine } from '../../host-api/log.ts';
import { readArtifact } from '../compile/artifact.ts';
import type { BuildResult } from '../compile/index.ts';
import type { EngineName } from '../sandbox/pool.ts';
import { buildKonnectors } from '../compile/parallel.ts';
import { allowHostArgs, connectToArgs, jsonObjectArg, limitsArg } from './cli-args.ts';
import { UsageError } from '../errors.ts';

// Each command imports the heavy parts it needs (the toolchain, the sandbox, CouchDB) as it runs:
// loading them all takes seconds, which every `konnector build` would pay.

const EXIT_OK = 0;
const EXIT_KONNECTOR_ERRORED = 1;
const EXIT_USAGE = 2;
const EXIT_INTERNAL = 3;

const HELP = {
  main: `Usage: konnector <command> [options]

Runs Cozy konnectors in a WebAssembly sandbox: as components (componentize-js, the default)
or as QuickJS bytecode on a WebAssembly QuickJS engine (build --engine quickjs).

Commands:
  build <konnector-dir> --out <file>   compile a konnector to one artifact file (several: --out-dir;
                                       --engine quickjs for the QuickJS engine)
  inspect <artifact> [--json]          show what an artifact is, imports and runs under
  run <artifact> --fields <json|file>  run one job and print its report
  compat <konnector-dir>...            build konnectors unmodified and run each offline: a table of outcomes
  demo                                 build the example konnector and run it against its vendor site
  serve [options]                      a long-running worker host with an HTTP API (docs/serve.md)

Run \`konnector <command> --help\` for a command's options.
Exit codes: 0 done, 1 the konnector ended with an error, 2 bad usage or input, 3 internal error.`,
  build: `Usage: konnector build <konnector-dir> --out <file> [--engine E] [--unmetered]
       konnector build <konnector-dir>... --out-dir <dir> [--jobs N] [--engine E] [--unmetered]

Bundles the konnector (manifest.konnector; its entry: package.json "main", else src/index.js,
src/index.ts, index.js, index.ts; its npm dependencies; cozy-konnector-libs resolves to the
sandbox SDK) and compiles it to a
WebAssembly component of the cozy:konnector world. Writes ONE artifact file holding
what is the konnector's own (its snapshot, stored as its difference from the reference
snapshot of a konnector holding only the SDK, compressed), the manifest and a sha256 over
both and the sha256 of the engine and the reference; those two, the same for every
konnector of a toolchain, are written once beside it as engines/<sha256>.wasm and
engines/<sha256>.kwasm (copy engines/ with the artifact). The same sources give the same
bytes, the artifact's, the engine's and the reference's.
Every core module that can loop is fuel-metered (docs/fuel.md); --unmetered leaves them
as they are, for benchmarks: \`run\` refuses such an artifact without --allow-unmetered.
  --out-dir <dir>  build each konnector to <dir>/<slug>.kwasm, --jobs at a time (default:
                   one per core); one's failure does not stop the others
  --engine <name>  componentize-js (default): a WebAssembly component, as above;
                   quickjs: the konnector compiled to QuickJS bytecode by the QuickJS engine
                   (runner/quickjs/engine.wasm, docs/engines.md), in the same kind of artifact
                   file, the engine written once beside it as engines/<sha256>.wasm. Its engine
                   is metered by the host when it loads it, so --unmetered does not apply.
What depends on the toolchain alone (the engine's splicing, wrapping and fuel metering, the
reference snapshot, built on the first build) is kept in
a build cache, $KONNECTOR_CACHE_DIR (default ~/.cache/konnector; "off" for none): builds
after the first are several times faster and give the same bytes.`,
  compat: `Usage: konnector compat [--engine E] <konnector-dir>...

How konnectors written for cozy-stack fare here, unmodified (npm run compat -- <dirs>).
Installs nothing: builds each directory as it is (its own node_modules if it has them;
cozy-konnector-libs resolves to the sandbox SDK), both cores at a time, then runs each
once offline with stand-in values for its manifest's fields, against an embedded CouchDB.
Prints a Markdown table: konnector, build (ok or why not), seconds, artifact MB, and the
offline run's state and error code. A konnector here must end with a standard error
code offline, never crash or hang. Exit 0 when the table is printed, whatever it says.
  --engine <name>  build for componentize-js (default) or quickjs, as \`build --engine\``,
  inspect: `Usage: konnector inspect <artifact> [--json] [--limits <file>]

Prints the artifact's slug, version, sha256, engine, reference snapshot (components), the full
import and export lists of the code that runs (a component's WIT imports; for a QuickJS
artifact, its engine module's \`konnector\` and WASI imports), the manifest permissions and
the limits a job of it runs under.
  --json           print one JSON object
  --limits <file>  JSON limits overriding the defaults (as for run)
Every command that reads an artifact looks for its engine (engines/<sha256>.wasm) and its
reference snapshot (engines/<sha256>.kwasm: the SDK's snapshot, which the konnector's own
part is stored against) in engines/ beside it, then in $KONNECTOR_ENGINES_DIR, then in the
build cache (where builds keep them too), and checks each against the sha256 the artifact
records.`,
  run: `Usage: konnector run <artifact> --fields <json|file> [options]

Runs one job of the konnector in the sandbox.
  --fields <json|file>      the account's fields (login, password...) as a JSON object or a file holding one
  --parameters <json|file>  the trigger's parameters (default {})
  --couchdb <url>           CouchDB to write to (default $COUCHDB_URL, else an embedded one under --data-dir)
  --data-dir <dir>          where the embedded CouchDB keeps its data (default .data/couchdb)
  --files-dir <dir>         where the files the konnector saves are stored, as <dir>/<instance>/<path>
                            (default .data/files)
  --instance <domain>       the Cozy instance the data belongs to (default cozy.localhost)
  --account <id>            the io.cozy.accounts id of the job (default <slug>-account)
  --connect-to <H:P:A:P>    send requests for host H port P to address A port P (curl syntax, repeatable);
                            the operator's way to reach a test server on this machine
  --allow-host [slug=]<spec>  only let the konnector reach this host (repeatable; syntax of allowed_hosts,
                            e.g. https://*.vendor.example; with slug=, for that konnector only); narrows
                            the manifest's list, never widens it
  --allow-unmetered         run an artifact built with --unmetered, or a QuickJS artifact's engine without
                            metering (its CPU use is then bounded by the wall clock only)
  --limits <file>           JSON limits overriding the defaults (see docs/limits.md)
  --json                    log lines as JSON lines, then the report as the LAST stdout line
Exit 0 when the job is done, 1 when the konnector errored, 2 for bad usage or input.`,
  demo: `Usage: konnector demo

Builds konnectors/examples/example-bills, starts its vendor site on 127.0.0.1, runs one job on an
embedded CouchDB (data under .data/demo-couchdb) and prints the report and the bills saved.`,
} as const;

type Command = keyof typeof HELP;

function parse<T extends NonNullable<ParseArgsConfig['options']>>(command: Command, argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError('bad-arguments', `${(error as Error).message}\n\n${HELP[command]}`);
  }
}

function onePositional(command: Command, positionals: string[], what: string): string {
  if (positionals.length !== 1) {
    throw new UsageError('bad-arguments', `${command} takes exactly one ${what}, got ${positionals.length}\n\n${HELP[command]}`);
  }
  return positionals[0]!;
}

async function build(argv: string[]): Promise<number> {
  const { values, positionals } = parse('build', argv, {
    out: { type: 'string', short: 'o' },
    'out-dir': { type: 'string' },
    jobs: { type: 'string' },
    engine: { type: 'string' },
    unmetered: { type: 'boolean' },
  });
  if (values.help) return help('build');
  const engine = engineArg('build', values.engine);
  const outDir = values['out-dir'];
  if (values.out !== undefined && outDir !== undefined) {
    throw new UsageError('bad-arguments', `give --out <file> for one konnector or --out-dir <dir> for several, not both\n\n${HELP.build}`);
  }
  if (outDir === undefined) {
    const dir = onePositional('build', positionals, 'konnector directory (several need --out-dir <dir>)');
    if (!values.out) throw new UsageError('bad-arguments', `build needs --out <file> (or --out-dir <dir>)\n\n${HELP.build}`);
    const { buildKonnector } = await import('../compile/index.ts');
    const result = await buildKonnector(dir, values.out, {
      unmetered: values.unmetered,
      engine,
      progress: (step) => process.stderr.write(`build: ${step}...\n`),
    });
    process.stdout.write(`${builtLine(result)}\n`);
    return EXIT_OK;
  }
  if (positionals.length === 0) throw new UsageError('bad-arguments', `build needs at least one konnector directory\n\n${HELP.build}`);
  const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs >= 1)) {
    throw new UsageError('bad-arguments', `--jobs takes a whole number of builds at a time (1 or more), got ${JSON.stringify(values.jobs)}`);
  }
  const outcomes = await buildKonnectors(positionals, outDir, {
    unmetered: values.unmetered,
    engine,
    jobs,
    progress: (dir, step) => process.stderr.write(`build: ${dir}: ${step}...\n`),
  });
  for (const outcome of outcomes) {
    if ('result' in outcome) process.stdout.write(`${builtLine(outcome.result)}\n`);
    else process.stderr.write(`konnector: ${outcome.dir}: ${outcome.error.message}\n`);
  }
  const failed = outcomes.flatMap((outcome) => ('error' in outcome ? [outcome.error] : []));
  if (failed.length > 0) process.stderr.write(`konnector: ${failed.length} of ${outcomes.length} builds failed\n`);
  if (failed.some((error) => !(error instanceof UsageError))) return EXIT_INTERNAL;
  return failed.length > 0 ? EXIT_USAGE : EXIT_OK;
}

const ENGINE_NAMES: readonly EngineName[] = ['componentize-js', 'quickjs'];

function engineArg(command: Command, value: string | undefined): EngineName {
  if (value === undefined) return 'componentize-js';
  const engine = ENGINE_NAMES.find((name) => name === value);
  if (!engine) throw new UsageError('bad-arguments', `--engine takes ${ENGINE_NAMES.join(' or ')}, got ${JSON.stringify(value)}\n\n${HELP[command]}`);
  return engine;
}

const builtLine = (result: BuildResult) => `${result.out}: ${result.slug} ${result.version}, ${result.bytes} bytes, sha256 ${result.sha256}`;

async function compat(argv: string[]): Promise<number> {
  const { values, positionals } = parse('compat', argv, { engine: { type: 'string' } });
  if (values.help) return help('compat');
  const engine = engineArg('compat', values.engine);
  if (positionals.length === 0) throw new UsageError('bad-arguments', `compat needs at least one konnector directory\n\n${HELP.compat}`);
  const { compatTable, formatCompatTable } = await import('./compat.ts');
  const rows = await compatTable(positionals, { engine, progress: (line) => process.stderr.write(`compat: ${line}\n`) });
  process.stdout.write(`${formatCompatTable(rows)}\n`);
  return EXIT_OK;
}

async function inspect(argv: string[]): Promise<number> {
  const { values, positionals } = parse('inspect', argv, { json: { type: 'boolean' }, limits: { type: 'string' } });
  if (values.help) return help('inspect');
  const file = onePositional('inspect', positionals, 'artifact');
  const artifact = await readArtifact(file);
  const { describeArtifact } = await import('../sandbox/load-artifact.ts');
  const { imports, exports, facts: engineFacts, lines: engineLines } = await describeArtifact(artifact);
  const limits = await limitsArg(values.limits);
  const { header } = artifact;
  const facts = {
    slug: header.manifest.slug,
    name: header.manifest.name,
    version: header.manifest.version,
    sha256: header.sha256,
    bytes: artifact.fileBytes,
    ...engineFacts,
    world: header.world,
    engine: { ...header.engine, file: artifact.engineFile },
    builtBy: header.builtBy,
    sourceSha256: header.sourceSha256,
    imports,
    exports,
    permissions: header.manifest.permissions,
    limits,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(facts)}\n`);
    return EXIT_OK;
  }
  const lines = [
    `${facts.slug} ${facts.version} (${facts.name})`,
    `sha256    ${facts.sha256}`,
    `world     ${facts.world}`,
    `engine    ${facts.engine.name} ${facts.engine.version}, built by ${facts.builtBy.name} ${facts.builtBy.version}`,
    `          sha256 ${facts.engine.sha256}, ${facts.engine.bytes} bytes, read from ${facts.engine.file}`,
    ...engineLines,
    `imports`,
    ...imports.map((i) => `  ${i}`),
    `exports`,
    ...exports.map((e) => `  ${e}`),
    `permissions`,
    ...Object.entries(facts.permissions).map(([key, p]) => `  ${key}: ${p.type} ${(p.verbs ?? ['ALL']).join(',')}`),
    `limits`,
    ...JSON.stringify(limits, null, 2).split('\n').slice(1, -1),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT_OK;
}

function printLogLine(json: boolean) {
  return (line: LogLine) => {
    if (json) process.stdout.write(`${JSON.stringify({ type: line.level, message: line.message, time: line.time, source: line.source })}\n`);
    else process.stderr.write(`${formatTextLine(line)}\n`);
  };
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse('run', argv, {
    fields: { type: 'string' },
    parameters: { type: 'string' },
    couchdb: { type: 'string' },
    'data-dir': { type: 'string' },
    'files-dir': { type: 'string' },
    instance: { type: 'string' },
    account: { type: 'string' },
    'connect-to': { type: 'string', multiple: true },
    'allow-host': { type: 'string', multiple: true },
    'allow-unmetered': { type: 'boolean' },
    limits: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) return help('run');
  const allowHosts = allowHostArgs(values['allow-host']);
  const file = onePositional('run', positionals, 'artifact');
  if (!values.fields) throw new UsageError('bad-arguments', `run needs --fields <json|file>\n\n${HELP.run}`);
  const fields = await jsonObjectArg('--fields', values.fields);
  const parameters = values.parameters ? await jsonObjectArg('--parameters', values.parameters) : {};
  const connectTo = connectToArgs(values['connect-to']);
  const limits = await limitsArg(values.limits);
  const artifact = await readArtifact(file);
  const { loadArtifact } = await import('../sandbox/load-artifact.ts');
  const { runJob } = await import('../sandbox/job.ts');
  const konnector = await loadArtifact(artifact, limits, { allowUnmetered: values['allow-unmetered'] });

  const couchUrl = values.couchdb || process.env.COUCHDB_URL || undefined;
  const { startEmbeddedCouchDB } = await import('../../host-api/couchdb-server.ts');
  const embedded = couchUrl ? undefined : await startEmbeddedCouchDB({ dataDir: path.resolve(values['data-dir'] ?? '.data/couchdb') });
  try {
    const report = await runJob(
      konnector,
      {
        accountId: values.account ?? `${artifact.header.manifest.slug}-account`,
        instance: values.instance ?? 'cozy.localhost',
        fields,
        parameters,
        manual: true, // run by hand
      },
      {
        couchUrl: couchUrl ?? embedded!.url,
        limits,
        connectTo,
        allowHosts,
        onLog: printLogLine(values.json ?? false),
        filesDir: path.resolve(values['files-dir'] ?? '.data/files'),
      },
    );
    if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else process.stdout.write(`${report.state}${report.error ? ` (${report.error}: ${report.message})` : ''} in ${report.durationMs} ms, ${report.requests} requests, saved ${JSON.stringify(report.saved)}\n`);
    return report.state === 'done' ? EXIT_OK : EXIT_KONNECTOR_ERRORED;
  } finally {
    await embedded?.stop();
  }
}

function help(command: Command): number {
  process.stdout.write(`${HELP[command]}\n`);
  return EXIT_OK;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'build':
      return build(rest);
    case 'inspect':
      return inspect(rest);
    case 'run':
      return run(rest);
    case 'compat':
      return compat(rest);
    case 'demo':
      if (rest.includes('--help') || rest.includes('-h')) return help('demo');
      // Loaded on demand: the demo and the worker host bring dependencies the other commands do not need.
      return (await import('./demo.ts')).runDemo();
    case 'serve':
      return (await import('../serve/cli.ts')).serveCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      return help('main');
    default:
      throw new UsageError('bad-arguments', `unknown command "${command}"\n\n${HELP.main}`);
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError) {
    process.stderr.write(`konnector: ${error.message}\n`);
    process.exitCode = EXIT_USAGE;
  } else {
    process.stderr.write(`konnector: internal error: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = EXIT_INTERNAL;
  }
}
