import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, runChaos } from '../src/run.ts';

describe('chaos on real processes', () => {
  it('a 60 s run with every fault kind keeps the history linearizable and every acknowledged write readable', async () => {
    const report = await runChaos({ durationMs: 60_000, seed: 7, log: (l) => console.log(l) });
    console.log(
      `faults: ${FAULT_KINDS.map((k) => `${k} ${report.faults[k]}`).join(', ')}; operations checked ${report.checkedOperations} of ${report.recordedOperations}; acknowledged writes ${report.acknowledgedWrites}; paused-leader reads ${report.pausedReads}; disk full ${JSON.stringify(report.diskFull)}`,
    );
    expect(report.violation).toBeUndefined();
    expect(report.linearizability.result).toBe('ok');
    for (const k of FAULT_KINDS) expect(report.faults[k], k).toBeGreaterThan(0);
    expect(report.lostWrites).toEqual([]);
    expect(report.acknowledgedWrites).toBeGreaterThan(50);
    expect(report.checkedOperations).toBeGreaterThan(500);
    // Reads sent to a paused leader were answered once it resumed, and checked with the rest.
    expect(report.pausedReads).toBeGreaterThan(0);
    // A full disk was reported, refused a write with the disk-full error, and served a read.
    expect(report.diskFull.degradedReported).toBeGreaterThan(0);
    expect(report.diskFull.refusedWrites).toBeGreaterThan(0);
    expect(report.diskFull.servedReads).toBeGreaterThan(0);
  }, 300_000);

  it('a 30 s run on 3 partitions aims every fault kind at the meta leader and at partition leaders, and stays linearizable', async () => {
    const report = await runChaos({ durationMs: 30_000, seed: 5, partitions: 3, log: (l) => console.log(l) });
    console.log(
      `faults: ${FAULT_KINDS.map((k) => `${k} ${report.faults[k]}`).join(', ')}; aimed at the meta leader ${report.targets.meta}, a partition leader ${report.targets.partition}; operations checked ${report.checkedOperations}; acknowledged writes ${report.acknowledgedWrites}`,
    );
    expect(report.violation).toBeUndefined();
    expect(report.linearizability.result).toBe('ok');
    for (const k of FAULT_KINDS) expect(report.faults[k], k).toBeGreaterThan(0);
    expect(report.targets.meta).toBeGreaterThan(0);
    expect(report.targets.partition).toBeGreaterThan(0);
    expect(report.lostWrites).toEqual([]);
    expect(report.acknowledgedWrites).toBeGreaterThan(20);
  }, 240_000);

  it('the check fails when nodes serve reads from local state unchecked (planted stale reads)', async () => {
    const report = await runChaos({ durationMs: 6_000, seed: 3, staleReads: true });
    expect(report.linearizability.result).toBe('illegal');
  }, 150_000);
});
