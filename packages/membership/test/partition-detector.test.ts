import { describe, expect, it } from 'vitest';
import { PartitionDetector } from '../src/partition-detector.js';

describe('partition detector', () => {
  it('is healthy above the 50% threshold (51%)', () => {
    expect(new PartitionDetector().check(51, 100, 0).kind).toBe('healthy');
  });

  it('treats exactly 50% as no quorum', () => {
    expect(new PartitionDetector().check(50, 100, 0).kind).toBe('suspect');
    expect(new PartitionDetector().check(49, 100, 0).kind).toBe('suspect');
  });

  it('stays suspect for the grace period (default 30 s), then is partitioned', () => {
    const d = new PartitionDetector();
    const s = d.check(2, 5, 1000);
    expect(s).toEqual({ kind: 'suspect', reachable: 2, expected: 5, graceRemainingMs: 30_000 });
    expect(d.check(2, 5, 30_999).kind).toBe('suspect');
    expect(d.check(2, 5, 31_000)).toEqual({ kind: 'partitioned', reachable: 2, expected: 5, minority: true });
  });

  it('flags the majority side of a partition under a stricter threshold as not minority', () => {
    const d = new PartitionDetector({ threshold: 0.7, gracePeriodMs: 0 });
    expect(d.check(3, 5, 0)).toEqual({ kind: 'partitioned', reachable: 3, expected: 5, minority: false });
  });

  it('returns to healthy and restarts the grace period when the quorum comes back', () => {
    const d = new PartitionDetector({ gracePeriodMs: 100 });
    d.check(1, 4, 0);
    expect(d.check(3, 4, 50).kind).toBe('healthy');
    expect(d.check(1, 4, 120)).toMatchObject({ kind: 'suspect', graceRemainingMs: 100 });
  });
});
