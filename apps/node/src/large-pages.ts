import { readFileSync } from 'node:fs';

/**
 * Node's machine code on 2 MiB pages for a server (`cohort start`).
 *
 * Node can copy its own code (~40 MB: V8's interpreter, built-ins and
 * compilers, libuv, OpenSSL) onto transparent huge pages as it starts
 * (`--use-largepages`). A request crosses the kernel several times on each
 * node (socket reads and writes, the writer thread's hand-offs), and where the
 * kernel isolates its page tables from user space (`pti`) on a processor
 * without PCIDs, each crossing empties the TLB: the code that runs next walks
 * the page tables again for every page it touches. On a few large pages
 * instead of ~10,000 small ones, a linearizable get cost the cluster about a
 * quarter less CPU on this project's test machine (tools/bench's README,
 * twenty-ninth session). It costs each node 11-16 MB of RSS (a private copy
 * of code whose file pages were shared) and 0.3-0.5 s at start (the
 * first image's ~0.2 s until it runs again, then the copy).
 *
 * The option must be on Node's command line (or in `NODE_OPTIONS`) when it
 * starts, and the `cohort` binary's shebang line also serves the short-lived
 * client commands, which would pay the start for nothing. So `cohort start`
 * replaces its own process image with one that has the option
 * (`process.execve`: same PID, same open stdio) before it loads anything
 * else, its configuration included (the new image reads it). `--use-largepages` with any
 * value on Node's command line or in `NODE_OPTIONS` leaves the choice to the
 * operator: `NODE_OPTIONS=--use-largepages=off` turns it off.
 *
 * The new image also asks glibc's allocator for huge pages
 * ({@link MALLOC_HUGE_PAGES}: it advises the kernel with `madvise(MADV_HUGEPAGE)`
 * on the memory it takes for its heaps, which is what the kernel's default
 * `madvise` mode waits for): Node's buffers, SQLite's page caches, OpenSSL's
 * and libuv's state, V8's own off-heap structures (not the JavaScript heap,
 * which V8 maps itself). Those are touched on every request
 * too, after the same TLB flushes: on this project's test machine it took
 * 7-11% off the cluster's CPU a request for writes and gets at 64 and 50
 * connections (tools/bench's README, thirty-second session), with the nodes'
 * resident memory unchanged. A `glibc.malloc.hugetlb`
 * already in `GLIBC_TUNABLES` is left as given (`=0` turns it off); other C
 * libraries ignore the variable.
 */

/** The option `cohort start` adds: `silent`, so Node says nothing where the kernel refuses. */
export const LARGE_PAGES_FLAG = '--use-largepages=silent';

/** The name of glibc's tunable for huge pages in its allocator, with its `=`. */
const HUGETLB = 'glibc.malloc.hugetlb=';

/** The glibc tunable `cohort start` adds to `GLIBC_TUNABLES` (glibc 2.35 on; older ones ignore it). */
export const MALLOC_HUGE_PAGES = `${HUGETLB}1`;

/** What {@link planLargePages} looks at: the running process, in a form tests can build. */
export interface LargePagesContext {
  platform: NodeJS.Platform;
  arch: string;
  execPath: string;
  /** Node's own options (`process.execArgv`). */
  execArgv: readonly string[];
  /** `process.argv`: the executable, the script, then its arguments. */
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  /** The content of `/sys/kernel/mm/transparent_hugepage/enabled`; undefined where it is missing. */
  thp: string | undefined;
  /** Whether this Node can replace its process image (`process.execve`, Node 22.15 and 23.11 on). */
  canExec: boolean;
  /** Whether the process has an IPC channel to its parent (`process.send`), which a new image would not keep. */
  ipc: boolean;
}

/** Either the command line to run instead of this process, or why this process runs as it is. */
export type LargePagesPlan =
  | { exec: true; file: string; args: string[]; env: NodeJS.ProcessEnv }
  | { exec: false; reason: string };

/** Whether `cohort start` should run again with its code on huge pages, and how. Pure: see {@link LargePagesContext}. */
export function planLargePages(ctx: LargePagesContext): LargePagesPlan {
  const chosen = (s: string | undefined) => s !== undefined && /(^|\s)--use-largepages(=|\s|$)/.test(s);
  const given = ctx.execArgv.find((a) => a === '--use-largepages' || a.startsWith('--use-largepages='));
  if (given !== undefined) return { exec: false, reason: `Node was started with ${given}` };
  if (chosen(ctx.env.NODE_OPTIONS)) return { exec: false, reason: 'NODE_OPTIONS sets --use-largepages' };
  const unavailable = hugePagesUnavailable(ctx);
  if (unavailable !== undefined) return { exec: false, reason: unavailable };
  if (!ctx.canExec) return { exec: false, reason: 'this Node cannot re-execute itself (process.execve: Node 22.15+)' };
  if (ctx.ipc) return { exec: false, reason: 'the process has an IPC channel to its parent' };
  return {
    exec: true,
    file: ctx.execPath,
    args: [ctx.execPath, ...ctx.execArgv, LARGE_PAGES_FLAG, ...ctx.argv.slice(1)],
    env: withMallocHugePages(ctx.env),
  };
}

/** The value of `glibc.malloc.hugetlb` in `env`'s `GLIBC_TUNABLES`; undefined where it is not set. */
export function mallocHugePages(env: NodeJS.ProcessEnv): string | undefined {
  return (env.GLIBC_TUNABLES ?? '')
    .split(':')
    .find((t) => t.startsWith(HUGETLB))
    ?.slice(HUGETLB.length);
}

/** `env` with {@link MALLOC_HUGE_PAGES} added to its `GLIBC_TUNABLES`, unless that sets `glibc.malloc.hugetlb` already. */
export function withMallocHugePages(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (mallocHugePages(env) !== undefined) return env;
  const tunables = env.GLIBC_TUNABLES ?? '';
  return { ...env, GLIBC_TUNABLES: tunables === '' ? MALLOC_HUGE_PAGES : `${tunables}:${MALLOC_HUGE_PAGES}` };
}

/** Why Node's `--use-largepages` cannot work here (platform, architecture, the kernel's setting); undefined where it can. */
export function hugePagesUnavailable(ctx: Pick<LargePagesContext, 'platform' | 'arch' | 'thp'>): string | undefined {
  if (ctx.platform !== 'linux' || ctx.arch !== 'x64') {
    return `Node maps its code onto huge pages on Linux x64 only (${ctx.platform} ${ctx.arch})`;
  }
  if (ctx.thp === undefined) return 'the kernel offers no transparent huge pages';
  if (ctx.thp.includes('[never]')) {
    return 'transparent huge pages are off (/sys/kernel/mm/transparent_hugepage/enabled)';
  }
  return undefined;
}

/** The running process's {@link LargePagesContext}. */
export function currentLargePagesContext(): LargePagesContext {
  let thp: string | undefined;
  try {
    thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
  } catch {
    thp = undefined;
  }
  return {
    platform: process.platform,
    arch: process.arch,
    execPath: process.execPath,
    execArgv: process.execArgv,
    argv: process.argv,
    env: process.env,
    thp,
    canExec: typeof process.execve === 'function',
    ipc: typeof process.send === 'function',
  };
}

/**
 * Runs this process again with {@link LARGE_PAGES_FLAG} when {@link planLargePages} says so (the call
 * then never returns); otherwise returns why not, or why the new image could not start (this process
 * then goes on as it is).
 */
export function reexecOnLargePages(ctx: LargePagesContext = currentLargePagesContext()): string {
  const plan = planLargePages(ctx);
  if (!plan.exec) return plan.reason;
  try {
    process.execve?.(plan.file, plan.args, plan.env);
  } catch (err) {
    return `re-executing with ${LARGE_PAGES_FLAG} failed: ${(err as Error).message}`;
  }
  return 'process.execve returned';
}

/** How much of this process's memory is on transparent huge pages, in bytes (`/proc/self/smaps_rollup`); undefined where unknown. */
export function hugePageBytes(): number | undefined {
  try {
    const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
