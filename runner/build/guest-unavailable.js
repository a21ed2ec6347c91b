// The Node built-ins a sandboxed konnector cannot have: files, processes,
// sockets, other threads, the inspector. A konnector (or one of its npm
// dependencies) that only names one still builds, as it did with webpack;
// one that calls it fails with an error naming what it called. The way out is
// cozy-konnector-libs (requestFactory, saveFiles...), over the host interface.

/** What konnectors' dependencies call on them, so that named imports of these resolve to failing functions too. */
const KNOWN_MEMBERS = {
  fs: ['readFileSync', 'writeFileSync', 'appendFileSync', 'existsSync', 'mkdirSync', 'readdirSync', 'statSync', 'lstatSync',
    'unlinkSync', 'rmSync', 'createReadStream', 'createWriteStream', 'readFile', 'writeFile', 'mkdir', 'readdir', 'stat', 'unlink', 'access'],
  'fs/promises': ['readFile', 'writeFile', 'mkdir', 'readdir', 'stat', 'unlink', 'rm', 'access', 'open'],
  child_process: ['exec', 'execSync', 'execFile', 'execFileSync', 'spawn', 'spawnSync', 'fork'],
  net: ['connect', 'createConnection', 'createServer', 'Socket', 'isIP', 'isIPv4', 'isIPv6'],
  tls: ['connect', 'createSecureContext', 'TLSSocket'],
  dgram: ['createSocket'],
  dns: ['lookup', 'resolve', 'resolve4', 'resolve6'],
  http: ['request', 'get', 'createServer', 'Agent'],
  https: ['request', 'get', 'createServer', 'Agent'],
  http2: ['connect', 'createServer'],
  worker_threads: ['Worker'],
  cluster: ['fork'],
  vm: ['runInNewContext', 'runInThisContext', 'Script', 'createContext'],
  async_hooks: ['AsyncResource', 'AsyncLocalStorage', 'createHook', 'executionAsyncId'],
};

export function unavailableBuiltin(name) {
  const call = (member) => () => {
    throw new Error(`${name}.${member} is not available in the konnector sandbox: a konnector reaches the outside only through cozy-konnector-libs (requestFactory, saveFiles...)`);
  };
  const members = KNOWN_MEMBERS[name] ?? [];
  return new Proxy({}, {
    get: (_, member) => (typeof member === 'symbol' || member === '__esModule' || member === 'then' ? undefined : call(member)),
    ownKeys: () => members,
    getOwnPropertyDescriptor: (_, member) => (members.includes(member) ? { configurable: true, enumerable: true, value: call(member) } : undefined),
  });
}
