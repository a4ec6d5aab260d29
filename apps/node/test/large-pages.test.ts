import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  LARGE_PAGES_FLAG,
  type LargePagesContext,
  MALLOC_HUGE_PAGES,
  currentLargePagesContext,
  hugePagesUnavailable,
  mallocHugePages,
  planLargePages,
  withMallocHugePages,
} from '../src/large-pages.js';
import { NODE_RUNTIME_FLAGS } from '../src/runtime-flags.js';
import { CLI, freePorts, poll } from './helpers/processes.js';

const base: LargePagesContext = {
  platform: 'linux',
  arch: 'x64',
  execPath: '/usr/bin/node',
  execArgv: ['--max-semi-space-size=8'],
  argv: ['/usr/bin/node', '/opt/cohort/cli.js', 'start', '--id', 'n1'],
  env: { HOME: '/home/cohort' },
  thp: 'always [madvise] never\n',
  canExec: true,
  ipc: false,
};

describe("cohort start's plan for Node's code on huge pages", () => {
  it("runs itself again with the option after Node's own flags, its script and arguments unchanged", () => {
    expect(planLargePages(base)).toEqual({
      exec: true,
      file: '/usr/bin/node',
      args: ['/usr/bin/node', '--max-semi-space-size=8', LARGE_PAGES_FLAG, '/opt/cohort/cli.js', 'start', '--id', 'n1'],
      env: { HOME: '/home/cohort', GLIBC_TUNABLES: MALLOC_HUGE_PAGES },
    });
  });

  it("asks glibc's allocator for huge pages in the new image, next to the operator's tunables, never over their choice", () => {
    expect(MALLOC_HUGE_PAGES).toBe('glibc.malloc.hugetlb=1');
    expect(withMallocHugePages({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' })).toEqual({
      GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1',
    });
    expect(withMallocHugePages({ GLIBC_TUNABLES: '' })).toEqual({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' });
    for (const given of ['glibc.malloc.hugetlb=0', 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2']) {
      const env = { GLIBC_TUNABLES: given, HOME: '/root' };
      expect(withMallocHugePages(env)).toBe(env);
      const plan = planLargePages({ ...base, env });
      expect(plan.exec && plan.env).toEqual(env);
    }
    // A tunable whose name merely starts alike is no choice.
    expect(withMallocHugePages({ GLIBC_TUNABLES: 'glibc.malloc.hugetlbx=0' }).GLIBC_TUNABLES).toBe(
      'glibc.malloc.hugetlbx=0:glibc.malloc.hugetlb=1',
    );
    expect(mallocHugePages({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1' })).toBe('1');
    expect(mallocHugePages({ GLIBC_TUNABLES: 'glibc.malloc.hugetlbx=0' })).toBeUndefined();
    expect(mallocHugePages({})).toBeUndefined();
  });

  it('leaves an operator who chose, on the command line or in NODE_OPTIONS, with that choice', () => {
    for (const flag of ['--use-largepages=off', '--use-largepages=on', LARGE_PAGES_FLAG]) {
      const plan = planLargePages({ ...base, execArgv: [...base.execArgv, flag] });
      expect(plan).toEqual({ exec: false, reason: `Node was started with ${flag}` });
    }
    for (const opts of ['--use-largepages=off', '--max-old-space-size=512 --use-largepages=on']) {
      expect(planLargePages({ ...base, env: { NODE_OPTIONS: opts } })).toEqual({
        exec: false,
        reason: 'NODE_OPTIONS sets --use-largepages',
      });
    }
    // Another option that merely starts alike is no choice.
    expect(planLargePages({ ...base, env: { NODE_OPTIONS: '--use-largepages-x' } }).exec).toBe(true);
  });

  it('does not run again where the option cannot work, and says why', () => {
    const why = (ctx: Partial<LargePagesContext>) => {
      const plan = planLargePages({ ...base, ...ctx });
      return plan.exec ? 'exec' : plan.reason;
    };
    expect(why({ platform: 'darwin' })).toMatch(/Linux x64 only \(darwin x64\)/);
    expect(why({ arch: 'arm64' })).toMatch(/Linux x64 only \(linux arm64\)/);
    expect(why({ thp: undefined })).toMatch(/no transparent huge pages/);
    expect(why({ thp: 'always madvise [never]\n' })).toMatch(/transparent huge pages are off/);
    expect(why({ canExec: false })).toMatch(/cannot re-execute itself/);
    expect(why({ ipc: true })).toMatch(/IPC channel/);
    expect(why({ thp: '[always] madvise never\n' })).toBe('exec');
  });
});

describe('cohort start with the default runtime flags', () => {
  it("runs again in the same process with Node's code on huge pages where the kernel offers them, and serves", async () => {
    const offered = hugePagesUnavailable(currentLargePagesContext()) === undefined;
    if (!offered)
      console.warn('no transparent huge pages here: checking only that cohort start says why it runs as it is');
    const dir = mkdtempSync(join(tmpdir(), 'cohort-large-pages-'));
    const [peer, resp, http] = await freePorts(3);
    const child = spawn(
      process.execPath,
      [
        ...NODE_RUNTIME_FLAGS,
        CLI,
        'start',
        '--id',
        'n1',
        '--data-dir',
        dir,
        '--peers',
        `n1=127.0.0.1:${peer}`,
        '--resp',
        `127.0.0.1:${resp}`,
        '--http',
        `127.0.0.1:${http}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '', GLIBC_TUNABLES: '' } },
    );
    let log = '';
    child.stderr.on('data', (d: Buffer) => {
      log += d.toString();
    });
    try {
      const line = await poll('the huge pages log line', 15_000, async () =>
        log.split('\n').find((l) => l.includes("Node's code on huge pages")),
      );
      const entry = JSON.parse(line) as { why: string; hugePagesMB?: number; mallocHugetlb?: string };
      await poll('the node to serve HTTP', 15_000, async () => {
        const res = await fetch(`http://127.0.0.1:${http}/healthz`).catch(() => undefined);
        return res?.ok ? true : undefined;
      });
      if (!offered) {
        expect(entry.why).not.toBe('');
        return;
      }
      // The process this test started is the server, now with the option on its command line.
      const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
      expect(cmdline).toContain(LARGE_PAGES_FLAG);
      expect(cmdline).toContain('start');
      expect(entry.why).toBe(`Node was started with ${LARGE_PAGES_FLAG}`);
      // And with glibc's allocator asked for huge pages too.
      const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0');
      expect(environ).toContain(`GLIBC_TUNABLES=${MALLOC_HUGE_PAGES}`);
      expect(entry.mallocHugetlb).toBe('1');
      // Node's code is tens of MB: at least four 2 MiB pages of it.
      expect(entry.hugePagesMB).toBeGreaterThanOrEqual(8);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});
