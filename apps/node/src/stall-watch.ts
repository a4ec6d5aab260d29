import { closeSync, openSync, readSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';

/** Monotonic totals for the main thread, in ms. */
export interface ThreadTimes {
  /** Time it ran on a CPU. */
  runMs: number;
  /** Time it was ready to run and waited for a CPU (Linux's schedstat); undefined where unknown. */
  waitMs?: number;
}

/**
 * What kept the event loop from turning, by the larger share of the stall. `stolen`: the machine's
 * hypervisor did not run its virtual CPUs (steal time): neither the node nor the machine's own load.
 */
export type StallCause = 'running' | 'waiting for a CPU' | 'stolen' | 'off CPU' | 'mixed';

/** One stall of the event loop, as {@link StallWatch} reports it. */
export interface Stall {
  /** How much longer than its interval the watch's timer took to fire. */
  stalledMs: number;
  /** The main thread on a CPU meanwhile: JavaScript, GC on this thread, synchronous calls (SQLite reads). */
  runningMs: number;
  /** Ready to run, no CPU free (the machine is oversubscribed); undefined where the OS does not tell. */
  waitingForCpuMs: number | undefined;
  /**
   * Neither: asleep in a system call (disk I/O, a lock, a page fault), the process stopped, or the
   * machine's virtual CPUs not run by its hypervisor (see `stolenMs`).
   */
  offCpuMs: number;
  /**
   * Of that, the hypervisor's steal time over the stall (per CPU of the machine, from Linux's
   * `/proc/stat`); undefined where unknown. Close to `offCpuMs`: the machine was not running, the
   * node was not blocked.
   */
  stolenMs: number | undefined;
  /** Garbage collection pauses that began in the stall (main thread and helpers). */
  gcMs: number;
  cause: StallCause;
  /** Groups this node led as the stall began or ended. */
  leaderOf: string[];
}

export interface StallWatchOptions {
  /** Stalls of at least this are reported. */
  thresholdMs: number;
  /** The interval the watch is sampled at: a stall is how much later than this a sample came. */
  intervalMs: number;
  /** At most one report per this span; the stalls in between are counted in the next report's `suppressed`. */
  quietMs: number;
  /**
   * A stall at least this long while the node led a group is reported whatever the quiet span (the
   * election timeout: its followers may have elected another leader meanwhile).
   */
  alwaysReportMs?: number;
  now(): number;
  threadTimes(): ThreadTimes;
  /** The machine's steal time so far, per CPU, in ms (monotonic); undefined where unknown. */
  stolenMs?(): number | undefined;
  /** GC pauses that began in [from, to) (on the `now` clock), in ms. */
  gcMsBetween(from: number, to: number): number;
  /** Every stall over the threshold (metrics), reported or not. */
  onStall?(stall: Stall): void;
  /**
   * The groups this node leads, taken at every sample: a stall is reported
   * with those led at the sample before it or as it ends (a leader's first
   * tick after the stall may step it down before the watch's sample does).
   */
  leaderOf?(): readonly string[];
  /** `leaderAtRisk`: a stall of `alwaysReportMs` or more while the node led a group. */
  report(stall: Stall, suppressed: number, leaderAtRisk: boolean): void;
}

/**
 * Notices the event loop stalling and tells why: on each sample (a timer
 * every `intervalMs`), a sample later than its interval by `thresholdMs` or
 * more is a stall, and the main thread's CPU and scheduling times over it say
 * whether the thread was running (JavaScript, GC, a synchronous call), ready
 * but without a CPU, or asleep in a system call. A leader that stalls past
 * its election timeout sends no heartbeat meanwhile, and its followers elect
 * another. The report waits for the next sample, so that the GC entries of the
 * stall (delivered to observers after it) are counted.
 */
export class StallWatch {
  private last: { at: number; times: ThreadTimes; stolen: number | undefined; leaderOf: readonly string[] } | undefined;
  private pending: { stall: Stall; from: number; to: number } | undefined;
  private lastReportAt = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(private readonly opts: StallWatchOptions) {}

  sample(): void {
    const at = this.opts.now();
    const times = this.opts.threadTimes();
    const stolenTotal = this.opts.stolenMs?.();
    if (this.pending !== undefined) {
      const { stall, from, to } = this.pending;
      this.pending = undefined;
      stall.gcMs = round(this.opts.gcMsBetween(from, to));
      this.opts.onStall?.(stall);
      const leaderAtRisk =
        stall.leaderOf.length > 0 && stall.stalledMs >= (this.opts.alwaysReportMs ?? Number.POSITIVE_INFINITY);
      if (at - this.lastReportAt >= this.opts.quietMs || leaderAtRisk) {
        this.lastReportAt = at;
        this.opts.report(stall, this.suppressed, leaderAtRisk);
        this.suppressed = 0;
      } else {
        this.suppressed++;
      }
    }
    const prev = this.last;
    const leaderOf = this.opts.leaderOf?.() ?? [];
    this.last = { at, times, stolen: stolenTotal, leaderOf };
    if (prev === undefined) return;
    const stalledMs = at - prev.at - this.opts.intervalMs;
    if (stalledMs < this.opts.thresholdMs) return;
    const gap = at - prev.at;
    const runningMs = clamp(times.runMs - prev.times.runMs, gap);
    const waiting =
      times.waitMs !== undefined && prev.times.waitMs !== undefined
        ? clamp(times.waitMs - prev.times.waitMs, gap - runningMs)
        : undefined;
    const offCpuMs = Math.max(0, gap - runningMs - (waiting ?? 0));
    const stolen =
      stolenTotal !== undefined && prev.stolen !== undefined ? clamp(stolenTotal - prev.stolen, offCpuMs) : undefined;
    this.pending = {
      from: prev.at,
      to: at,
      stall: {
        stalledMs: round(stalledMs),
        runningMs: round(runningMs),
        waitingForCpuMs: waiting === undefined ? undefined : round(waiting),
        offCpuMs: round(offCpuMs),
        stolenMs: stolen === undefined ? undefined : round(stolen),
        gcMs: 0,
        cause: causeOf(gap, runningMs, waiting ?? 0, offCpuMs, stolen ?? 0),
        leaderOf: [...new Set([...prev.leaderOf, ...leaderOf])].sort(),
      },
    };
  }
}

function causeOf(gap: number, running: number, waiting: number, off: number, stolen: number): StallCause {
  if (running >= gap / 2) return 'running';
  if (waiting >= gap / 2) return 'waiting for a CPU';
  if (stolen >= gap / 2) return 'stolen';
  if (off >= gap / 2) return 'off CPU';
  return 'mixed';
}

const clamp = (v: number, max: number): number => Math.min(Math.max(0, v), Math.max(0, max));
const round = (v: number): number => Math.round(v * 10) / 10;

/** Open descriptors of the `/proc` files this module samples, by path: one per file, kept for the thread's life. */
const procFds = new Map<string, number>();

/**
 * Reads a Linux `/proc` file's current text, up to `buf`'s size, through a descriptor kept open: the kernel
 * makes the text anew for each read from offset 0, so a sample costs one system call instead of an open, a
 * read and a close (the stall watch samples 20 times a second). Undefined where the file cannot be read, and
 * (unless `allowCut`) when its text fills `buf`: it may be cut there.
 */
export function readProcFile(path: string, buf: Buffer, allowCut = false): string | undefined {
  let fd = procFds.get(path);
  try {
    if (fd === undefined) {
      fd = openSync(path, 'r');
      procFds.set(path, fd);
    }
    const n = readSync(fd, buf, 0, buf.length, 0);
    return n < buf.length || allowCut ? buf.toString('latin1', 0, n) : undefined;
  } catch {
    // Opened again by the next read, if the file is there then.
    if (fd !== undefined) {
      procFds.delete(path);
      try {
        closeSync(fd);
      } catch {}
    }
    return undefined;
  }
}

/**
 * The calling thread's times: Linux's `/proc/thread-self/schedstat` (time on
 * a CPU and time waiting for one, in ns) where it exists, else the thread's
 * CPU time alone (`process.threadCpuUsage`, Node 23.9+) or the process's.
 */
export function threadTimesReader(): () => ThreadTimes {
  const buf = Buffer.alloc(256);
  const schedstat = (): ThreadTimes | undefined => {
    const text = readProcFile('/proc/thread-self/schedstat', buf);
    if (text === undefined) return undefined;
    const [run, wait] = text.split(' ');
    const runNs = Number(run);
    const waitNs = Number(wait);
    return Number.isFinite(runNs) && Number.isFinite(waitNs) ? { runMs: runNs / 1e6, waitMs: waitNs / 1e6 } : undefined;
  };
  if (schedstat() !== undefined) return () => schedstat() ?? { runMs: 0 };
  const p = process as NodeJS.Process & { threadCpuUsage?: () => NodeJS.CpuUsage };
  const cpu = p.threadCpuUsage?.bind(p) ?? process.cpuUsage.bind(process);
  return () => {
    const u = cpu();
    return { runMs: (u.user + u.system) / 1000 };
  };
}

/**
 * The machine's steal time per CPU so far, in ms, from a `/proc/stat` text: the `cpu` line's eighth
 * value (in USER_HZ ticks, 100 a second on Linux) over the number of `cpuN` lines; undefined if absent.
 */
export function stealPerCpuMs(procStat: string): number | undefined {
  const lines = procStat.split('\n');
  const total = lines.find((l) => l.startsWith('cpu '));
  const cpus = lines.filter((l) => /^cpu\d+ /.test(l)).length;
  const steal = Number(total?.trim().split(/\s+/)[8]);
  if (total === undefined || cpus === 0 || !Number.isFinite(steal)) return undefined;
  return (steal * 10) / cpus;
}

/**
 * Reads {@link stealPerCpuMs} from `/proc/stat`: its first `bytes` (64 KiB), where the `cpu` lines come first
 * (a longer text is cut after them, in its per-interrupt counts); undefined where there is none (not Linux),
 * or where they do not all fit.
 */
export function stealReader(bytes = 64 * 1024): () => number | undefined {
  const buf = Buffer.alloc(bytes);
  const read = (): number | undefined => {
    const text = readProcFile('/proc/stat', buf, true);
    if (text === undefined) return undefined;
    // Cut text holds every `cpuN` line if another kind of line follows them.
    if (text.length === buf.length && !/\ncpu\d+ [^\n]*\n(?!cpu)/.test(text)) return undefined;
    return stealPerCpuMs(text);
  };
  return read() === undefined ? () => undefined : read;
}

/** Starts a {@link StallWatch} on a timer (unref'd), with GC pauses from a `gc` performance observer. */
export function startStallWatch(
  opts: Pick<StallWatchOptions, 'thresholdMs' | 'report' | 'onStall' | 'leaderOf' | 'alwaysReportMs'> & {
    intervalMs?: number;
    quietMs?: number;
  },
): { stop(): void } {
  const intervalMs = opts.intervalMs ?? 50;
  // GC pauses of the last minute (start on performance.now(), duration): a stall looks back over its own span.
  const gcs: { start: number; ms: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, ms: e.duration });
    const horizon = performance.now() - 60_000;
    while (gcs.length > 0 && (gcs[0] as { start: number }).start < horizon) gcs.shift();
  });
  observer.observe({ entryTypes: ['gc'] });
  const watch = new StallWatch({
    thresholdMs: opts.thresholdMs,
    intervalMs,
    quietMs: opts.quietMs ?? 5_000,
    now: () => performance.now(),
    threadTimes: threadTimesReader(),
    stolenMs: stealReader(),
    gcMsBetween: (from, to) => gcs.reduce((sum, g) => (g.start >= from && g.start < to ? sum + g.ms : sum), 0),
    report: opts.report,
    ...(opts.onStall !== undefined ? { onStall: opts.onStall } : {}),
    ...(opts.leaderOf !== undefined ? { leaderOf: opts.leaderOf } : {}),
    ...(opts.alwaysReportMs !== undefined ? { alwaysReportMs: opts.alwaysReportMs } : {}),
  });
  watch.sample();
  const timer = setInterval(() => watch.sample(), intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      observer.disconnect();
    },
  };
}
