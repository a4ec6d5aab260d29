import { describe, expect, it } from 'vitest';
// The built package, as the Raft batches (see seed-batch.ts): `pnpm test` builds first.
import { InvariantViolationError, LinearizabilityViolationError, vpaxos } from '../dist/index.js';

const { VP_COVERAGE_KINDS, VP_META_COVERAGE_KINDS, missingVpCoverage, runVpSeed, runVpSeeds } = vpaxos;

describe('Vertical Paxos simulation', () => {
  it('seeds 1-30 keep every invariant and linearizability, and reach every sometimes-assertion', async () => {
    // Any violation rejects with its seed and the command that replays it.
    const s = await runVpSeeds(1, 30);
    expect(s.seeds).toBe(30);
    // Sometimes-assertions: a slot chosen, a failover completed, a lease waited out before a new
    // primary was activated, a lagging backup caught up, three failovers in one run (and more).
    expect(missingVpCoverage(s.coverage)).toEqual([]);
    expect(VP_COVERAGE_KINDS).toContain('threeFailovers');
    expect(s.ops.completed).toBeGreaterThan(30 * 100);
    // Exploration: runs reach several depths of reconfiguration.
    expect(Object.values(s.depth.ballots).filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it("seeds 1-10 with the master on a simulated meta group (the node's master code) keep every invariant, and its leader killed mid-failover still lets the failover complete", async () => {
    const s = await runVpSeeds(1, 10, { master: 'meta' });
    expect(s.seeds).toBe(10);
    // The meta group is checked as every Raft group is (election safety, log matching, leader completeness, votes).
    expect(s.metaInvariantChecks).toBeGreaterThan(1000);
    // The meta group's kinds: founded, its leader crashed with a failover ballot pending, and that failover completed.
    expect(missingVpCoverage(s.coverage, true).filter((k) => VP_META_COVERAGE_KINDS.includes(k as never))).toEqual([]);
    for (const k of [
      'slotChosen',
      'failoverCompleted',
      'leaseWaitThenActivated',
      'leaseRead',
      'threeFailovers',
    ] as const)
      expect(s.coverage[k], k).toBeGreaterThan(0);
  }, 120_000);

  it('replays a seed with the master on the meta group exactly', async () => {
    const a = await runVpSeed(3, { master: 'meta' });
    const b = await runVpSeed(3, { master: 'meta' });
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.events).toBe(a.events);
    expect(b.coverage).toEqual(a.coverage);
  });

  it('replays a seed exactly: same trace hash, events and coverage', async () => {
    const a = await runVpSeed(7);
    const b = await runVpSeed(7);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.events).toBe(a.events);
    expect(b.coverage).toEqual(a.coverage);
    expect(b.ops).toEqual(a.ops);
    expect((await runVpSeed(8)).traceHash).not.toBe(a.traceHash);
  });
});

describe('the Vertical Paxos checks can fail', () => {
  /** The first seed from 1 on whose run rejects (any violation names its seed and how to replay it). */
  async function firstFailure(
    options: Parameters<typeof runVpSeed>[1],
    upTo = 60,
  ): Promise<{ seed: number; error: Error }> {
    for (let seed = 1; seed <= upTo; seed++) {
      const error = await runVpSeed(seed, options).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      if (error) {
        expect(error.message).toContain(`pnpm --filter @cohort/sim sim:vpaxos --seed ${seed}`);
        return { seed, error };
      }
    }
    throw new Error(`no seed up to ${upTo} failed`);
  }

  it('a store acknowledging votes before they are durable: chosen only with every acceptor', async () => {
    const { error } = await firstFailure({ mutations: { ackBeforeDurable: true } });
    expect(error).toBeInstanceOf(InvariantViolationError);
    expect((error as InvariantViolationError).property).toBe('chosen only with every acceptor');
  });

  it('an acceptor forgetting its promise in a crash: no vote below maxBallot', async () => {
    const { error } = await firstFailure({ mutations: { forgetPromises: true } });
    expect(error).toBeInstanceOf(InvariantViolationError);
    expect((error as InvariantViolationError).property).toBe('no vote below maxBallot');
  });

  it('a master activating without waiting out the lease: lease read not stale', async () => {
    const { error } = await firstFailure({ mutations: { skipLeaseWait: true }, reads: 'lease' });
    expect(error).toBeInstanceOf(InvariantViolationError);
    expect((error as InvariantViolationError).property).toBe('lease read not stale');
  });

  it('clients reading from a replica that only believes it is primary: caught by the linearizability checker', async () => {
    const { error } = await firstFailure({ mutations: { unconfirmedReads: true }, reads: 'safe' });
    expect(error).toBeInstanceOf(LinearizabilityViolationError);
    expect(error.message).toContain('--reads safe');
  });
});
