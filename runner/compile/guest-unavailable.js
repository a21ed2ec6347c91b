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
  http2: ['connect', 'createServer'],
  worker_threads: ['Worker'],
  cluster: ['fork'],
  vm: ['runInNewContext', 'runInThisContext', 'Script', 'createContext'],
  async_hooks: ['AsyncResource', 'AsyncLocalStorage', 'createHook', 'executionAsyncId'],
};

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const isIPv4 = (text) => IPV4.test(String(text));
const isIPv6 = (text) => {
  const address = String(text);
  if (!address.includes(':') || /[^0-9a-fA-F:.]/.test(address)) return false;
  try {
    new URL(`http://[${address}]/`);
    return true;
  } catch {
    return false;
  }
};

/** Members that only compute (no socket, no file): they work as in Node. tough-cookie tells IPs from names with them. */
const PURE_MEMBERS = {
  net: { isIP: (text) => (isIPv4(text) ? 4 : isIPv6(text) ? 6 : 0), isIPv4, isIPv6 },
};

export function unavailableBuiltin(name) {
  const call = (member) => () => {
    throw new Error(`${name}.${member} is not available in the konnector sandbox: a konnector reaches the outside only through cozy-konnector-libs (requestFactory, saveFiles...)`);
  };
  const members = KNOWN_MEMBERS[name] ?? [];
  const pure = PURE_MEMBERS[name] ?? {};
  const member = (key) => (Object.hasOwn(pure, key) ? pure[key] : call(key));
  return new Proxy({}, {
    get: (_, key) => (typeof key === 'symbol' || key === '__esModule' || key === 'then' ? undefined : member(key)),
    ownKeys: () => members,
    getOwnPropertyDescriptor: (_, key) => (members.includes(key) ? { configurable: true, enumerable: true, value: member(key) } : undefined),
  });
}
