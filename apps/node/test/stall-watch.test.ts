import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type Stall,
  StallWatch,
  type ThreadTimes,
  readProcFile,
  stealPerCpuMs,
  stealReader,
  threadTimesReader,
} from '../src/stall-watch.js';

interface HarnessOptions {
  thresholdMs?: number;
  quietMs?: number;
  alwaysReportMs?: number;
  gcs?: { at: number; ms: number }[];
  /** false: the thread's times carry no waiting time (no schedstat). */
  schedstat?: boolean;
  /** false: the machine's steal time is unknown (not Linux). */
  steal?: boolean;
}

/**
 * A watch over a hand-driven clock and thread times: `step(ms, run, wait)` moves both and samples;
 * `lead(groups)` sets the groups the node leads from the next sample on.
 */
function harness(opts: HarnessOptions = {}) {
  let now = 0;
  let times: ThreadTimes = opts.schedstat === false ? { runMs: 0 } : { runMs: 0, waitMs: 0 };
  let leading: string[] = [];
  let stolen = 0;
  const reports: { stall: Stall; suppressed: number }[] = [];
  const stalls: Stall[] = [];
  const watch = new StallWatch({
    thresholdMs: opts.thresholdMs ?? 250,
    intervalMs: 50,
    quietMs: opts.quietMs ?? 5_000,
    ...(opts.alwaysReportMs !== undefined ? { alwaysReportMs: opts.alwaysReportMs } : {}),
    now: () => now,
    threadTimes: () => times,
    stolenMs: () => (opts.steal === false ? undefined : stolen),
    gcMsBetween: (from, to) => (opts.gcs ?? []).reduce((s, g) => (g.at >= from && g.at < to ? s + g.ms : s), 0),
    leaderOf: () => leading,
    onStall: (s) => stalls.push(s),
    report: (stall, suppressed) => reports.push({ stall, suppressed }),
  });
  watch.sample();
  const step = (ms: number, run: number, wait = 0, steal = 0): void => {
    now += ms;
    stolen += steal;
    times = { runMs: times.runMs + run, ...(times.waitMs !== undefined ? { waitMs: times.waitMs + wait } : {}) };
    watch.sample();
  };
  const lead = (groups: readonly string[]): void => {
    leading = [...groups];
  };
  return { step, lead, reports, stalls };
}

describe('StallWatch', () => {
  it('stays quiet while samples come on time or late by less than the threshold', () => {
    const h = harness();
    for (let i = 0; i < 100; i++) h.step(50, 5);
    h.step(290, 280); // 240 ms late
    h.step(50, 5);
    expect(h.reports).toEqual([]);
    expect(h.stalls).toEqual([]);
  });

  it('reports a stall at the next sample, with the GC pauses that began in it, as running when the thread was on a CPU', () => {
    const h = harness({
      gcs: [
        { at: 100, ms: 120 },
        { at: 700, ms: 40 },
      ],
    });
    h.step(50, 5);
    h.step(650, 600, 10); // 600 ms late: the thread ran 600 of the 650 ms
    expect(h.reports).toEqual([]);
    h.step(50, 5);
    expect(h.reports).toEqual([
      {
        stall: {
          stalledMs: 600,
          runningMs: 600,
          waitingForCpuMs: 10,
          offCpuMs: 40,
          stolenMs: 0,
          gcMs: 120,
          cause: 'running',
          leaderOf: [],
        },
        suppressed: 0,
      },
    ]);
  });

  it('tells a thread that waited for a CPU from one asleep in a system call', () => {
    const h = harness({ quietMs: 0 });
    h.step(850, 50, 700);
    h.step(50, 5);
    h.step(900, 20, 10);
    h.step(50, 5);
    expect(h.reports.map((r) => [r.stall.cause, r.stall.waitingForCpuMs, r.stall.offCpuMs])).toEqual([
      ['waiting for a CPU', 700, 100],
      ['off CPU', 10, 870],
    ]);
  });

  it('tells a machine whose hypervisor did not run it from a thread asleep in a system call', () => {
    const h = harness({ quietMs: 0 });
    h.step(900, 20, 10, 800);
    h.step(50, 5);
    h.step(900, 20, 10, 100);
    h.step(50, 5);
    // Steal past what the thread was off CPU (another CPU's share) counts up to that.
    h.step(900, 20, 10, 5_000);
    h.step(50, 5);
    expect(h.reports.map((r) => [r.stall.cause, r.stall.offCpuMs, r.stall.stolenMs])).toEqual([
      ['stolen', 870, 800],
      ['off CPU', 870, 100],
      ['stolen', 870, 870],
    ]);
  });

  it("reads the machine's steal time per CPU from /proc/stat", () => {
    const stat = [
      'cpu  7081175 1638 1387626 7181260 183458 0 180286 99034 0 0',
      'cpu0 3537428 751 667502 3676081 62655 0 66420 49249 0 0',
      'cpu1 3543747 887 720124 3505178 120803 0 113865 49785 0 0',
      'intr 1 2 3',
    ].join('\n');
    // 99,034 ticks of 10 ms over two CPUs.
    expect(stealPerCpuMs(stat)).toBe(495_170);
    expect(stealPerCpuMs('intr 1 2 3\n')).toBeUndefined();
    expect(stealPerCpuMs('cpu  1 2 3\ncpu0 1 2 3\n')).toBeUndefined();
    const read = stealReader();
    if (process.platform === 'linux') expect(read()).toBeTypeOf('number');
    else expect(read()).toBeUndefined();
  });

  it.runIf(process.platform === 'linux')(
    'reads the steal time from /proc/stat cut after its cpu lines, not inside them',
    () => {
      const text = readFileSync('/proc/stat', 'latin1');
      const lines = text.split('\n');
      const cpuLines = lines.filter((l) => l.startsWith('cpu'));
      // The cpu lines come first; the text up to the first character of the next line holds them all.
      const afterCpu = cpuLines.reduce((n, l) => n + l.length + 1, 0);
      expect(lines.slice(0, cpuLines.length)).toEqual(cpuLines);
      expect(stealReader(afterCpu + 1)()).toBeTypeOf('number');
      // Cut inside the cpu lines, where lines could be missing and the count of CPUs wrong: refused.
      expect(stealReader(afterCpu - 5)()).toBeUndefined();
    },
  );

  it('reports at most one stall per quiet span, and counts the others in the next report', () => {
    const h = harness({ quietMs: 5_000 });
    h.step(400, 350);
    h.step(50, 5);
    for (let i = 0; i < 3; i++) {
      h.step(500, 450);
      h.step(50, 5);
    }
    expect(h.reports).toHaveLength(1);
    expect(h.stalls).toHaveLength(4);
    for (let i = 0; i < 100; i++) h.step(50, 5);
    h.step(700, 10);
    h.step(50, 5);
    expect(h.reports).toHaveLength(2);
    expect(h.reports[1]).toMatchObject({ suppressed: 3, stall: { stalledMs: 650, cause: 'off CPU' } });
  });

  it("reports a leader's stall as long as the election timeout even within the quiet span, not a follower's", () => {
    const h = harness({ quietMs: 5_000, alwaysReportMs: 500 });
    for (const [late, leads] of [
      [300, []],
      [600, []],
      [300, ['p0']],
      [600, ['p0']],
      [300, []],
    ] as const) {
      h.lead(leads);
      h.step(50, 0);
      h.step(50 + late, 0);
      h.step(50, 0);
    }
    expect(h.reports.map((r) => [r.stall.stalledMs, r.stall.leaderOf])).toEqual([
      [300, []],
      [600, ['p0']],
    ]);
  });

  it('names the groups it led as the stall began or as it ended', () => {
    const h = harness({ quietMs: 0 });
    h.lead(['meta']);
    h.step(50, 0);
    // Elected for p0 just before the stall, between two samples; deposed of meta by its first tick after it.
    h.lead(['p0']);
    h.step(800, 0);
    h.lead([]);
    h.step(50, 0);
    expect(h.reports.map((r) => r.stall.leaderOf)).toEqual([['meta', 'p0']]);
  });

  it('without the time spent waiting for a CPU (no schedstat), counts what did not run as off CPU', () => {
    const h = harness({ quietMs: 0, schedstat: false, steal: false });
    h.step(600, 100);
    h.step(50, 0);
    expect(h.reports.map((r) => r.stall)).toEqual([
      {
        stalledMs: 550,
        runningMs: 100,
        waitingForCpuMs: undefined,
        offCpuMs: 500,
        stolenMs: undefined,
        gcMs: 0,
        cause: 'off CPU',
        leaderOf: [],
      },
    ]);
  });

  it.runIf(process.platform === 'linux')(
    'reads a /proc file anew through one kept descriptor, and refuses text that fills the buffer',
    () => {
      const buf = Buffer.alloc(4096);
      const first = readProcFile('/proc/thread-self/schedstat', buf);
      expect(first).toMatch(/^\d+ \d+ \d+\n$/);
      const fds = readdirSync('/proc/self/fd').length;
      // The same descriptor gives the thread's time as it grows: the kernel makes the text anew for each read.
      const deadline = performance.now() + 5_000;
      let x = 0;
      let later = first;
      while (later === first && performance.now() < deadline) {
        for (let i = 0; i < 100_000; i++) x += Math.sqrt(x + 1);
        later = readProcFile('/proc/thread-self/schedstat', buf);
      }
      expect(x).toBeGreaterThan(0);
      expect(Number(later?.split(' ')[0])).toBeGreaterThan(Number(first?.split(' ')[0]));
      for (let i = 0; i < 100; i++) readProcFile('/proc/thread-self/schedstat', buf);
      expect(readdirSync('/proc/self/fd').length).toBe(fds);
      // Cut text is refused rather than parsed; a file that is not there reads as undefined.
      expect(readProcFile('/proc/stat', Buffer.alloc(8))).toBeUndefined();
      expect(readProcFile('/proc/self/no-such-file', buf)).toBeUndefined();
    },
  );

  it("reads this thread's times, which grow as it runs", () => {
    const read = threadTimesReader();
    const before = read();
    // Runs until this thread has been on a CPU for 10 ms more (a busy machine may hold it off one for a
    // while: a fixed 30 ms of wall time once gave it only 9.9 ms), within a deadline.
    const deadline = performance.now() + 5_000;
    let x = 0;
    let after = read();
    while (after.runMs - before.runMs <= 10 && performance.now() < deadline) {
      for (let i = 0; i < 100_000; i++) x += Math.sqrt(x + 1);
      after = read();
    }
    expect(x).toBeGreaterThan(0);
    expect(after.runMs - before.runMs).toBeGreaterThan(10);
    if (process.platform === 'linux') expect(after.waitMs).toBeTypeOf('number');
  });
});
