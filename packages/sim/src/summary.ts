import type { BatchSummary, SeedResult } from './raft/run.js';

function hours(ms: number): string {
  return (ms / 3_600_000).toFixed(2);
}

/** A human-readable summary of a batch of seeds. */
export function formatSummary(s: BatchSummary, wallMs: number, allPassed = true): string {
  const verdict = allPassed ? 'all linearizable' : 'linearizable up to the failing seed';
  const lines = [
    `seeds:           ${s.seeds}`,
    `simulated:       ${hours(s.simMs)} h (${(s.simMs / 1000).toFixed(0)} s) in ${(wallMs / 1000).toFixed(1)} s wall (${(s.simMs / Math.max(1, wallMs)).toFixed(0)}x)`,
    `cpu time:        ${(s.cpuMs / 1000).toFixed(1)} s (${(s.simMs / Math.max(1, s.cpuMs)).toFixed(0)}x simulated per CPU second)`,
    `events:          ${s.events}`,
    `client ops:      ${s.ops.total} (${s.ops.completed} answered, ${s.ops.unknown} unknown outcome), ${verdict}`,
    'faults injected:',
    ...Object.entries(s.faults).map(([k, v]) => `  ${k.padEnd(15)}${v}`),
    'coverage:',
    ...Object.entries(s.coverage).map(([k, v]) => `  ${k.padEnd(18)}${v}`),
  ];
  return lines.join('\n');
}

/** One line describing a seed's run. */
export function formatSeed(r: SeedResult): string {
  const c = r.config;
  return [
    `seed ${r.seed}: ok, trace ${r.traceHash}`,
    `  cluster: ${c.voters} voters, tick ${c.tickMs}ms skew ${(c.tickSkew * 100).toFixed(0)}%, reads ${c.raft.readOnlyOption}, preVote ${c.raft.preVote}`,
    `  simulated ${(r.simMs / 1000).toFixed(0)} s in ${r.wallMs.toFixed(0)} ms wall (${r.cpuMs.toFixed(0)} ms CPU), ${r.events} events, ${r.invariantChecks} invariant checks`,
    `  ops: ${r.ops.total} (${r.ops.completed} answered, ${r.ops.unknown} unknown)`,
    `  faults: ${JSON.stringify(r.faults)}`,
    `  network: ${JSON.stringify(r.network)}`,
    `  coverage: ${JSON.stringify(r.coverage)}`,
  ].join('\n');
}
