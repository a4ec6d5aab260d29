import { describe, expect, it } from 'vitest';
import {
  COVERAGE_KINDS,
  type Coverage,
  InvariantViolationError,
  LinearizabilityViolationError,
  missingCoverage,
  runSeed,
  runSeeds,
} from '../src/index.js';

describe('simulation replay', () => {
  it('replays a seed exactly: same trace hash, events and coverage', () => {
    const a = runSeed(11, { simMs: 15_000 });
    const b = runSeed(11, { simMs: 15_000 });
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.events).toBe(a.events);
    expect(b.coverage).toEqual(a.coverage);
    expect(b.faults).toEqual(a.faults);
    const c = runSeed(12, { simMs: 15_000 });
    expect(c.traceHash).not.toBe(a.traceHash);
  });
});

describe('the checks can fail', () => {
  it('a host serving reads without ReadIndex is caught by the linearizability checker, with a replayable seed', () => {
    let failure: { seed: number; message: string } | undefined;
    for (let seed = 1; seed <= 30 && !failure; seed++) {
      try {
        runSeed(seed, { simMs: 20_000, cluster: { bugs: { staleReads: true } } });
      } catch (e) {
        expect(e).toBeInstanceOf(LinearizabilityViolationError);
        failure = { seed, message: (e as Error).message };
      }
    }
    expect(failure).toBeDefined();
    const f = failure as { seed: number; message: string };
    expect(f.message).toContain(`pnpm sim --seed ${f.seed} --sim-seconds 20`);
    // The failure replays from its seed.
    expect(() => runSeed(f.seed, { simMs: 20_000, cluster: { bugs: { staleReads: true } } })).toThrow(f.message);
  });

  it('a host applying entries before they commit is caught by state machine safety', () => {
    let caught: unknown;
    try {
      runSeed(3, { simMs: 20_000, cluster: { bugs: { applyUncommitted: true } } });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(InvariantViolationError);
    expect((caught as InvariantViolationError).property).toBe('state machine safety');
    expect((caught as InvariantViolationError).at.seed).toBe(3);
  });
});

describe('the coverage gate', () => {
  it('reports the states a fault-free batch never reaches', () => {
    const s = runSeeds(1, 4, { simMs: 5_000, faults: false });
    const min = Object.fromEntries(COVERAGE_KINDS.map((k) => [k, 1])) as Coverage;
    const missing = missingCoverage(s.coverage, min);
    expect(missing).toContain('crashRestart');
    expect(missing).toContain('leaderTransfer');
    expect(missing).toContain('jointConfig');
    expect(missing).not.toContain('readIndexServed');
  });
});
