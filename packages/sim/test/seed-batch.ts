import { describe, expect, it } from 'vitest';
// The built package, not src: vitest's module transform makes the simulator's hot paths about 40% slower
// (measured: 100 seeds in 11.8 s from dist, 18.8 s from src), and these batches are most of the suite.
// `pnpm test` builds first.
import { COVERAGE_KINDS, type Coverage, missingCoverage, runSeeds } from '../dist/index.js';

/** Simulated time of faults per seed: enough for elections, membership changes and snapshots, small enough for CI. */
const SIM_MS = 20_000;

/**
 * Each interesting state must be reached at least this often in each batch. A node stops on a corrupt
 * entry only if it reads it before compaction drops it (a restarted host resumes past what it applied),
 * about 7 to 15 times per batch: 5 for that one.
 */
const MINIMUM: Coverage = {
  ...(Object.fromEntries(COVERAGE_KINDS.map((k) => [k, 10])) as Coverage),
  corruptionStop: 5,
  // A breaker closes only when a later forward probes the same peer (its circuit opened while it led, and it
  // leads again after the cooldown): 19 and 17 times in these batches.
  circuitClosed: 5,
  // These batches run one group without quiescence (quiesce-seeds.test.ts covers it).
  groupQuiesced: 0,
  groupWoke: 0,
  livenessReport: 0,
};

/**
 * Seeds `first .. first+count-1` of mixed faults as one test. The 500 seeds
 * are split into two files so vitest runs them on two cores.
 */
export function seedBatch(first: number, count: number): void {
  describe(`seeds ${first}-${first + count - 1} of mixed faults`, () => {
    it('keep every Raft invariant and linearizability, and reach every coverage goal', async () => {
      // Any violation rejects with its seed and the command that replays it.
      const s = await runSeeds(first, count, { simMs: SIM_MS });
      expect(s.seeds).toBe(count);
      expect(missingCoverage(s.coverage, MINIMUM)).toEqual([]);
      expect(s.faults.crash).toBeGreaterThan(count);
      expect(s.faults.partition).toBeGreaterThan(count);
      expect(s.faults.msgDropped).toBeGreaterThan(0);
      expect(s.faults.msgDuplicated).toBeGreaterThan(0);
      expect(s.ops.completed).toBeGreaterThan(count * 50);
    }, 240_000);
  });
}
