/**
 * System services some suites need (redis-server, chromium; the npm registry for
 * upstream's spec files, see upstream-package.ts). Where one is absent the
 * suite is skipped with one printed line saying why and how to get it, unless
 * REQUIRE_TEST_SERVICES=1 (set by .ci/run) makes its absence a failure.
 */
import { execFileSync } from 'node:child_process';
import { describe } from 'vitest';

export interface SystemService {
  /** What the suite calls it in messages. */
  name: string;
  /** Executable names tried in order on the PATH. */
  executables: readonly string[];
  /** How a newcomer installs it. */
  install: string;
}

export const REDIS: SystemService = { name: 'redis-server', executables: ['redis-server'], install: 'apt-get install redis-server' };
export const CHROMIUM: SystemService = {
  name: 'chromium',
  executables: ['chromium', 'chromium-browser', 'google-chrome'],
  install: 'apt-get install chromium',
};

/** The executable's absolute path, or undefined where none of its names is on the PATH. */
export function findExecutable(service: SystemService): string | undefined {
  for (const name of service.executables) {
    try {
      return execFileSync('sh', ['-c', 'command -v "$1"', 'sh', name], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      // not this name; try the next
    }
  }
  return undefined;
}

export const servicesRequired = process.env.REQUIRE_TEST_SERVICES === '1';

/** Why a suite cannot run here, and how to make it run. */
export interface Unavailable {
  /** What is missing, e.g. "redis-server is not installed". */
  missing: string;
  /** How a newcomer gets it. */
  remedy: string;
}

/**
 * `describe` where nothing is missing; elsewhere a skipped suite and one line on stderr,
 * or a thrown error when the environment requires every service.
 */
export function describeUnlessUnavailable(title: string, unavailable: Unavailable | undefined, body: () => void): void {
  if (!unavailable) {
    describe(title, body);
    return;
  }
  if (servicesRequired) throw new Error(`${unavailable.missing}, and REQUIRE_TEST_SERVICES=1 requires it: ${unavailable.remedy}`);
  process.stderr.write(`${title}: skipped, ${unavailable.missing} (${unavailable.remedy}; REQUIRE_TEST_SERVICES=1 makes this a failure)\n`);
  describe.skip(title, body);
}

/** `describeUnlessUnavailable` for a system service: the body gets its executable's path. */
export function describeWithService(service: SystemService, title: string, body: (executable: string) => void): void {
  const executable = findExecutable(service);
  const unavailable = executable ? undefined : { missing: `${service.name} is not installed`, remedy: service.install };
  describeUnlessUnavailable(title, unavailable, () => body(executable ?? ''));
}
