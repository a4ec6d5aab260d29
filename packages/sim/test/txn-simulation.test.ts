import { describe, expect, it } from 'vitest';
// The built package, as the seed batches use it (see seed-batch.ts).
import { type TxnSeedResult, runTxnSeed } from '../dist/index.js';

/** Replays one seed alone: `COHORT_TXN_SEED=N`. */
const only = process.env.COHORT_TXN_SEED;
// Seeds whose crashes together reach every protocol step (each seed walks the list from its own start;
// how far it gets in its simulated time depends on the hosts' timing, so a change there may need another
// seed here: the assertion below names the step no seed reached, and a seed starting at that step's block,
// as 28 starts at txnAbort's, reaches it; 11 replaced 1, which stopped short of txnCommit.answer.participant
// once forwarded requests carried their sender's wait, and 6 replaced 11, which stopped short of it once
// ReadIndex rounds asked one follower of two).
const SEEDS = only === undefined ? [6, 2, 3, 4, 5, 28] : [Number(only)];

describe('cross-partition transactions under crashes at every protocol step and a lossy network', () => {
  it('apply all or nothing, leave no intent behind, and are finished by readers when their coordinator died', async () => {
    const results: TxnSeedResult[] = [];
    // Any violation rejects with its seed and the command that replays it.
    for (const seed of SEEDS) results.push(await runTxnSeed(seed, { simMs: 12_000 }));
    if (only !== undefined) return;
    const sum = (f: (r: TxnSeedResult) => number): number => results.reduce((n, r) => n + f(r), 0);
    expect(sum((r) => r.committed)).toBeGreaterThan(SEEDS.length * 20);
    expect(sum((r) => r.stableReads)).toBeGreaterThan(SEEDS.length);
    // Sometimes: a transaction committed by a reader after its coordinator died, and one aborted that way.
    expect(sum((r) => r.coverage.committedByReader)).toBeGreaterThan(0);
    expect(sum((r) => r.coverage.abortedByReader)).toBeGreaterThan(0);
    // Crashes at every protocol step, before and after its log write, on the coordinator's and a participant's side.
    const crashes = new Set(results.flatMap((r) => Object.keys(r.coverage.stepCrashes)));
    for (const step of ['txnPrepare', 'txnCommit', 'txnResolve', 'txnAbort', 'txnForget']) {
      for (const phase of ['send', 'answer']) {
        for (const who of ['coordinator', 'participant']) expect(crashes).toContain(`${step}.${phase}.${who}`);
      }
    }
  }, 180_000);
});
