// The binaries the comparison runs (etcd, Redis, redis-benchmark, wrk): where they are, and the
// package to install when one is missing.
import { constants, accessSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The path of `name` on PATH; undefined when it is not installed. */
export function findBinary(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

/** What to install for a missing binary (Debian and Ubuntu package names). */
export const INSTALL: Record<string, string> = {
  etcd: 'apt-get install -y etcd-server',
  'redis-server': 'apt-get install -y redis-server',
  'redis-benchmark': 'apt-get install -y redis-tools',
  wrk: 'apt-get install -y wrk',
};
