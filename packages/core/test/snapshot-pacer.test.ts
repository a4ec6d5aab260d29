import { describe, expect, it } from 'vitest';
import { SnapshotPacer } from '../src/snapshot-pacer.js';

const MIB = 1024 * 1024;

/** Feeds `n` writes of `ms` each, one per millisecond from `from`; returns the time after the last. */
function writes(p: SnapshotPacer, from: number, n: number, ms: number): number {
  for (let i = 0; i < n; i++) p.observeWrite(ms, from + i);
  return from + n;
}

/** Feeds `n` writes of `ms` each, one every `every` ms from `from`; returns the time after the last. */
function spaced(p: SnapshotPacer, from: number, n: number, ms: number, every: number): number {
  for (let i = 0; i < n; i++) p.observeWrite(ms, from + i * every);
  return from + n * every;
}

describe('SnapshotPacer', () => {
  it('goes at the configured rate when no write is served, and when it does not adapt', () => {
    const p = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    p.begin();
    expect(p.rate(0)).toBe(16 * MIB);
    const fixed = new SnapshotPacer({ maxBytesPerSec: 4 * MIB, minBytesPerSec: 4 * MIB });
    expect(fixed.adaptive).toBe(false);
    writes(fixed, 0, 100, 2);
    fixed.begin();
    writes(fixed, 100, 100, 50);
    expect(fixed.rate(200)).toBe(4 * MIB);
    expect(new SnapshotPacer({ maxBytesPerSec: 0, minBytesPerSec: 0 }).rate(0)).toBe(0);
  });

  it('backs off to its floor while writes are slower than before the transfer, and speeds up once they recover', () => {
    let backoffs = 0;
    const p = new SnapshotPacer({
      maxBytesPerSec: 16 * MIB,
      minBytesPerSec: MIB,
      onBackoff: () => {
        backoffs++;
      },
    });
    // Before the transfer: 2 ms writes.
    let now = writes(p, 0, 2000, 2);
    p.begin();
    // During it: 4 ms writes (2x, above the 1.15x tolerance).
    const rates: number[] = [];
    for (let step = 0; step < 8; step++) {
      now = writes(p, now, 300, 4);
      rates.push(p.rate(now));
    }
    for (let i = 1; i < 4; i++) expect(rates[i]).toBeLessThan(rates[i - 1]!);
    expect(rates.at(-1)).toBe(MIB);
    expect(backoffs).toBeGreaterThanOrEqual(4);
    expect(p.backoffs).toBe(backoffs);
    // Writes back at 2.2 ms (within 1.15x): the rate grows again, never above the maximum.
    let last = p.rate(now);
    for (let step = 0; step < 40; step++) {
      now = writes(p, now, 300, 2.2);
      const r = p.rate(now);
      expect(r).toBeGreaterThanOrEqual(last);
      expect(r).toBeLessThanOrEqual(16 * MIB);
      last = r;
    }
    expect(last).toBe(16 * MIB);
  });

  it('backs off by default once writes are 1.2x slower: a margin under the 80% of throughput a transfer must leave them', () => {
    const p = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    let now = writes(p, 0, 2000, 2);
    p.begin();
    for (let step = 0; step < 8; step++) {
      now = writes(p, now, 300, 2.4);
      p.rate(now);
    }
    expect(p.rate(now)).toBe(MIB);
    expect(p.backoffs).toBeGreaterThanOrEqual(4);
    p.end();
  });

  it('backs off for stalls between fast stretches: each adjustment weighs every write since the last', () => {
    const p = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    let now = writes(p, 0, 2000, 2);
    p.begin();
    p.rate(now);
    for (let step = 0; step < 8; step++) {
      // A stall of ten 40 ms writes, then 290 writes at 2 ms: the recent average is back at 2 ms by the
      // time the rate is adjusted, but these 300 writes took 3.3 ms on average (1.6x).
      now = writes(p, now, 10, 40);
      now = writes(p, now, 290, 2);
      p.rate(now);
    }
    expect(p.rate(now)).toBe(MIB);
    expect(p.backoffs).toBeGreaterThanOrEqual(4);
  });

  it('does not let the transfer raise its own bar: the baseline stays what writes took before it', () => {
    const p = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    let now = writes(p, 0, 2000, 2);
    p.begin();
    // A long transfer with writes at 3 ms throughout: still above 1.15 x 2 ms at the end.
    for (let step = 0; step < 50; step++) {
      now = writes(p, now, 300, 3);
      p.rate(now);
    }
    expect(p.rate(now)).toBe(MIB);
    p.end();
  });

  it('keeps the baseline at the long-run level through a disturbance of a few seconds just before a transfer', () => {
    const p = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    // 20 s at 2 ms, then 2 s at 4 ms (a node restarting, the copy of the state made for the transfer).
    let now = writes(p, 0, 20_000, 2);
    now = writes(p, now, 2000, 4);
    p.begin();
    expect(p.baselineMs).toBeGreaterThan(2);
    expect(p.baselineMs).toBeLessThan(2.5);
    // Writes at 3 ms during the transfer are 1.5x the long-run level, not below the disturbance's 4 ms.
    for (let step = 0; step < 8; step++) {
      now = writes(p, now, 300, 3);
      p.rate(now);
    }
    expect(p.rate(now)).toBe(MIB);
    p.end();
    expect(p.baselineMs).toBeUndefined();
  });

  it('backs off while fewer writes complete at the same latency, not when the load merely falls', () => {
    const slower = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    // 20 s of 2 ms writes, one a millisecond; during the transfer one every 1.3 ms, as slow as before: the
    // clients lose a quarter of their writes (beyond the node's latency, which stays put).
    let now = writes(slower, 0, 20_000, 2);
    slower.begin();
    for (let step = 0; step < 8; step++) {
      now = spaced(slower, now, 200, 2, 1.3);
      slower.rate(now);
    }
    expect(slower.rate(now)).toBe(MIB);
    expect(slower.backoffs).toBeGreaterThanOrEqual(4);
    // Half the writes, but faster ones (1.6 ms): clients left; the transfer keeps its full rate.
    const fewer = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    now = writes(fewer, 0, 20_000, 2);
    fewer.begin();
    for (let step = 0; step < 8; step++) {
      now = spaced(fewer, now, 150, 1.6, 2);
      expect(fewer.rate(now)).toBe(16 * MIB);
    }
    expect(fewer.backoffs).toBe(0);
  });

  it("takes the writes' rate before a transfer over the time they were served: a pause does not lower it", () => {
    const p = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    // 20 s of writes one a millisecond, a 3 s pause, half a second of writes again.
    let now = writes(p, 0, 20_000, 2);
    now = writes(p, now + 3000, 500, 2);
    p.begin();
    // One write every 1.3 ms at the same latency: fewer than before the pause, by more than the tolerance.
    for (let step = 0; step < 8; step++) {
      now = spaced(p, now, 200, 2, 1.3);
      p.rate(now);
    }
    expect(p.rate(now)).toBe(MIB);
    p.end();
  });

  it('returns to full rate once writes stop for a while', () => {
    const p = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    let now = writes(p, 0, 1000, 2);
    p.begin();
    for (let step = 0; step < 6; step++) {
      now = writes(p, now, 300, 10);
      p.rate(now);
    }
    expect(p.rate(now)).toBeLessThan(16 * MIB);
    expect(p.rate(now + 2000)).toBe(16 * MIB);
  });

  it('serves overlapping transfers: the baseline stays frozen until the last one ends, then learns the new level', () => {
    const p = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    let now = writes(p, 0, 2000, 2);
    p.begin();
    p.begin();
    now = writes(p, now, 300, 3);
    p.end();
    // One transfer still runs: 3 ms writes stay above 1.15 x 2 ms.
    for (let step = 0; step < 6; step++) {
      now = writes(p, now, 300, 3);
      p.rate(now);
    }
    expect(p.rate(now)).toBeLessThan(16 * MIB);
    p.end();
    // Without transfers the long-run level learns that writes now take 3 ms (over its 10 s time constant): the
    // next transfer is measured by it.
    now = writes(p, now, 30_000, 3);
    p.begin();
    for (let step = 0; step < 6; step++) {
      now = writes(p, now, 300, 3);
      expect(p.rate(now)).toBe(16 * MIB);
    }
    expect(p.backoffs).toBeGreaterThan(0);
  });

  it("gives a transfer's log line the latency it holds the writes to, only while transfers run on an adaptive pacer", () => {
    const p = new SnapshotPacer({ maxBytesPerSec: 16 * MIB, minBytesPerSec: MIB });
    const at = writes(p, 0, 2000, 2.04);
    expect(p.logFields()).toEqual({});
    p.begin();
    p.rate(at);
    expect(p.logFields()).toEqual({ writeLatencyBaselineMs: 2 });
    p.end();
    expect(p.logFields()).toEqual({});
    const fixed = new SnapshotPacer({ maxBytesPerSec: 4 * MIB, minBytesPerSec: 4 * MIB });
    writes(fixed, 0, 2000, 2);
    fixed.begin();
    expect(fixed.logFields()).toEqual({});
  });

  it('schedules chunks from the previous one due, restarting after a chunk that left late; none without a limit', () => {
    // A fixed 1,000 bytes/s: a 100-byte chunk is due 100 ms after the one before.
    const p = new SnapshotPacer({ maxBytesPerSec: 1000, minBytesPerSec: 1000 });
    const first = p.nextDue(undefined, 0, 100, 0);
    expect(first).toBe(100);
    // A timer that fired early sent it at 98: the next is still due at 200, not 198.
    expect(p.nextDue(first, 98, 100, 98)).toBe(200);
    // Sent at 500, long after it was due: 600, no burst to make up the stretch.
    expect(p.nextDue(200, 500, 100, 500)).toBe(600);
    expect(new SnapshotPacer({ maxBytesPerSec: 0, minBytesPerSec: 0 }).nextDue(undefined, 0, 100, 0)).toBeUndefined();
  });
});
