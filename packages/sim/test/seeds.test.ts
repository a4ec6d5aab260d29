import { describe, expect, it } from 'vitest';
import { COVERAGE_KINDS, type Coverage, missingCoverage, runSeeds } from '../src/index.js';

const SEEDS = 500;
/** Simulated time of faults per seed: enough for elections, membership changes and snapshots, small enough for CI. */
const SIM_MS = 20_000;

/** Each interesting state must be reached at least this often across the batch. */
const MINIMUM: Coverage = Object.fromEntries(COVERAGE_KINDS.map((k) => [k, 10])) as Coverage;

describe(`${SEEDS} seeds of mixed faults`, () => {
  it('keep every Raft invariant and linearizability, and reach every coverage goal', async () => {
    // Any violation throws with its seed and the command that replays it.
    const s = await runSeeds(1, SEEDS, { simMs: SIM_MS });
    expect(s.seeds).toBe(SEEDS);
    expect(missingCoverage(s.coverage, MINIMUM)).toEqual([]);
    expect(s.faults.crash).toBeGreaterThan(SEEDS);
    expect(s.faults.partition).toBeGreaterThan(SEEDS);
    expect(s.faults.msgDropped).toBeGreaterThan(0);
    expect(s.faults.msgDuplicated).toBeGreaterThan(0);
    expect(s.ops.completed).toBeGreaterThan(SEEDS * 50);
  }, 240_000);
});
