import { describe, expect, it } from 'vitest';
// The built package, as in seed-batch.ts: `pnpm test` builds first.
import { runSeed, runSeeds } from '../dist/index.js';

/**
 * Many groups per node with quiescence: idle groups stop ticking on every replica and wake on
 * traffic or liveness reports, under crashes, partitions, membership changes and disk faults.
 * Clients pause up to 3 s between operations, so their group goes quiescent too and reads reach
 * quiescent leaders (by lease in a third of the seeds, by ReadIndex otherwise).
 */
const OPTIONS = { simMs: 20_000, groups: 8, quiesce: true, clientThinkMs: [20, 3_000] as [number, number] };

describe('quiescent groups under faults', () => {
  it('keep every Raft invariant in every group and linearizability, and quiesce and wake often', async () => {
    // Any violation rejects with its seed and the command that replays it.
    const mixed = await runSeeds(1, 30, OPTIONS);
    const lease = await runSeeds(101, 15, { ...OPTIONS, reads: 'lease' });
    for (const s of [mixed, lease]) {
      expect(s.coverage.groupQuiesced).toBeGreaterThan(s.seeds * 50);
      expect(s.coverage.groupWoke).toBeGreaterThan(s.seeds * 50);
      expect(s.coverage.livenessReport).toBeGreaterThan(s.seeds);
      expect(s.faults.crash).toBeGreaterThan(s.seeds);
      expect(s.faults.partition).toBeGreaterThan(s.seeds / 2);
      expect(s.ops.completed).toBeGreaterThan(s.seeds * 20);
    }
    expect(lease.coverage.leaseRead).toBeGreaterThan(100);
  }, 240_000);

  it('replay exactly from their seed', async () => {
    const a = await runSeed(7, OPTIONS);
    const b = await runSeed(7, OPTIONS);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.events).toBe(a.events);
    expect(b.coverage).toEqual(a.coverage);
    expect(a.coverage.groupQuiesced).toBeGreaterThan(0);
  });
});
