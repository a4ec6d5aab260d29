import { describe, expect, it } from 'vitest';
import {
  COVERAGE_KINDS,
  type Coverage,
  InvariantViolationError,
  LinearizabilityViolationError,
  RunFailedError,
  missingCoverage,
  runSeed,
  runSeeds,
} from '../src/index.js';

describe('simulation replay', () => {
  it('replays a seed exactly: same trace hash, events and coverage', async () => {
    const a = await runSeed(11, { simMs: 15_000 });
    const b = await runSeed(11, { simMs: 15_000 });
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.events).toBe(a.events);
    expect(b.coverage).toEqual(a.coverage);
    expect(b.faults).toEqual(a.faults);
    expect(b.ops).toEqual(a.ops);
    const c = await runSeed(12, { simMs: 15_000 });
    expect(c.traceHash).not.toBe(a.traceHash);
  });
});

describe('the checks can fail', () => {
  it('a host serving reads without ReadIndex is caught by the linearizability checker, with a replayable seed', async () => {
    // Without check-quorum a leader cut off from the others keeps leading, so its reads go stale at once;
    // ReadIndex keeps a correct host linearizable in that setting too. More clients and faults make it quick:
    // a stale read needs the leader cut off while a client reads through it and another writes elsewhere (with
    // 12 clients, 5 of the first 40 seeds catch it; with 6, none or two, depending on how requests retry).
    const options = {
      simMs: 20_000,
      reads: 'safe' as const,
      clients: 12,
      actionEveryMs: 500,
      cluster: { hostFaults: { readsWithoutReadIndex: true }, raft: { checkQuorum: false } },
    };
    let failure: { seed: number; message: string } | undefined;
    for (let seed = 1; seed <= 100 && !failure; seed++) {
      try {
        await runSeed(seed, options);
      } catch (e) {
        expect(e).toBeInstanceOf(LinearizabilityViolationError);
        failure = { seed, message: (e as Error).message };
      }
    }
    expect(failure).toBeDefined();
    const f = failure as { seed: number; message: string };
    expect(f.message).toContain(`pnpm sim --seed ${f.seed} --sim-seconds 20 --reads safe`);
    // The failure replays from its seed.
    await expect(runSeed(f.seed, options)).rejects.toThrow(f.message);
  });

  it('a host applying entries before they commit is caught by state machine safety', async () => {
    let caught: unknown;
    try {
      await runSeed(3, { simMs: 20_000, cluster: { hostFaults: { applyBeforeCommit: true } } });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(InvariantViolationError);
    expect((caught as InvariantViolationError).property).toBe('state machine safety');
    expect((caught as InvariantViolationError).at.seed).toBe(3);
  });

  it('a host that reads a corrupt entry and runs on is caught, with a replayable seed', async () => {
    // Every seed damages a disk; the engine seam swallows the store's checksum error, as a careless host would.
    const options = { simMs: 20_000, diskFaultShare: 1, cluster: { mutations: { ignoreCorruptReads: true } } };
    let failure: RunFailedError | undefined;
    for (let seed = 1; seed <= 40 && !failure; seed++) {
      try {
        await runSeed(seed, options);
      } catch (e) {
        expect(e).toBeInstanceOf(RunFailedError);
        failure = e as RunFailedError;
      }
    }
    const f = failure as RunFailedError;
    expect(f.message).toMatch(/read a corrupt entry and kept running/);
    expect(f.message).toContain(`pnpm sim --seed ${f.at.seed} --sim-seconds 20 --disk-fault-share 1`);
    await expect(runSeed(f.at.seed, options)).rejects.toThrow(f.message);
  });
});

describe('the coverage gate', () => {
  it('reports the states a fault-free batch never reaches', async () => {
    const s = await runSeeds(1, 4, { simMs: 5_000, faults: false });
    const min = Object.fromEntries(COVERAGE_KINDS.map((k) => [k, 1])) as Coverage;
    const missing = missingCoverage(s.coverage, min);
    expect(missing).toContain('crashRestart');
    expect(missing).toContain('leaderTransfer');
    expect(missing).toContain('jointConfig');
    expect(missing).not.toContain('readIndexServed');
  });
});
