import { describe, expect, it } from 'vitest';
// The built package, as in seed-batch.ts: `pnpm test` builds first.
import { InvariantViolationError, placement } from '../dist/index.js';

const { PLACEMENT_GOALS, missingPlacementCoverage, runPlacementSeed, runPlacementSeeds } = placement;

/**
 * Partitioned clusters with the meta group and the placement controller of the binary: nodes join,
 * die past the grace period (sometimes with the meta leader crashing during the repair), restart or are
 * cut off within it, leave, and the meta leader is cut off, while clients write to every partition.
 */
describe('placement under joins, deaths, leaves, restarts and partitions', () => {
  it('keeps every invariant and linearizability, and reaches every sometimes-goal in a batch', async () => {
    // Any violation rejects with its seed and the command that replays it.
    const s = await runPlacementSeeds(1, 30);
    expect(s.seeds).toBe(30);
    expect(missingPlacementCoverage(s.coverage, PLACEMENT_GOALS)).toEqual([]);
    expect(s.coverage.joinRebalanced).toBeGreaterThan(20);
    expect(s.coverage.metaLeaderChange).toBeGreaterThan(10);
    // After the joins, leaders spread by count (every partition led by its assigned voter) in nearly every seed.
    expect(s.coverage.leadersBalanced).toBeGreaterThanOrEqual(s.seeds - 3);
    expect(s.ops.completed).toBeGreaterThan(s.seeds * 100);
  }, 240_000);

  it('replays exactly from its seed', async () => {
    const a = await runPlacementSeed(3);
    const b = await runPlacementSeed(3);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.events).toBe(a.events);
    expect(b.coverage).toEqual(a.coverage);
    expect(a.reconfigurations).toBeGreaterThan(0);
  });

  it('catches a node that serves forwards routed by an older partition map', async () => {
    // A forward meets a newer map in a seed or two of ten: the first such seed fails.
    let err: unknown;
    for (let seed = 1; seed <= 12 && err === undefined; seed++) {
      err = await runPlacementSeed(seed, { mutations: { unfenced: true } }).then(
        () => undefined,
        (e: unknown) => e,
      );
    }
    expect(err).toBeInstanceOf(InvariantViolationError);
    expect((err as InvariantViolationError).property).toBe('stale epoch fencing');
    expect((err as Error).message).toMatch(/sim:placement --seed \d+/);
  }, 120_000);

  it('catches placement that moves data during a restart or a cut-off within the grace period', async () => {
    const err = await runPlacementSeed(1, { mutations: { noGracePeriod: true } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvariantViolationError);
    expect((err as InvariantViolationError).property).toMatch(/moves no data/);
  });
});
