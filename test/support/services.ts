/**
 * System services some suites need (redis-server, chromium). Where one is absent the
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

/**
 * `describe` where the service exists; elsewhere a skipped suite and one line on stderr,
 * or a thrown error when the environment requires every service.
 */
export function describeWithService(service: SystemService, title: string, body: (executable: string) => void): void {
  const executable = findExecutable(service);
  if (executable) {
    describe(title, () => body(executable));
    return;
  }
  const reason = `${title}: skipped, ${service.name} is not installed (${service.install}; REQUIRE_TEST_SERVICES=1 makes this a failure)`;
  if (servicesRequired) throw new Error(`${service.name} is required (REQUIRE_TEST_SERVICES=1) but not installed: ${service.install}`);
  process.stderr.write(`${reason}\n`);
  describe.skip(title, () => body(''));
}
