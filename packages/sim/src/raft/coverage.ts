/** Interesting states a Raft run can reach; a batch of seeds must reach each of them. */
export const COVERAGE_KINDS = [
  'leaderChange',
  'snapshotInstall',
  'jointConfig',
  'readIndexServed',
  // A leader's ReadIndex round asked the rest of the followers after the hedge delay (the quorum asked first was slow).
  'readHedged',
  'leaseRead',
  'leaderTransfer',
  'catchUpBySnapshot',
  'catchUpByLog',
  'confChange',
  'crashRestart',
  'crashMidWrite',
  'tornWrite',
  'corruptEntry',
  'corruptionStop',
  'corruptRow',
  'stateRepaired',
  // A node's circuit breaker of forwarding to a peer opened, and closed again after an answered probe.
  'circuitOpened',
  'circuitClosed',
  // Runs with quiescence (ClusterConfig.quiesce) only.
  'groupQuiesced',
  'groupWoke',
  'livenessReport',
] as const;

export type CoverageKind = (typeof COVERAGE_KINDS)[number];

/** Counts of each {@link CoverageKind}. */
export type Coverage = Record<CoverageKind, number>;

export function emptyCoverage(): Coverage {
  const c = {} as Coverage;
  for (const k of COVERAGE_KINDS) c[k] = 0;
  return c;
}

/** Adds `b` into `a`. */
export function addCoverage(a: Coverage, b: Coverage): void {
  for (const k of COVERAGE_KINDS) a[k] += b[k];
}

/** The kinds with fewer than `min` occurrences. */
export function missingCoverage(c: Coverage, min: Partial<Coverage>): CoverageKind[] {
  return COVERAGE_KINDS.filter((k) => c[k] < (min[k] ?? 0));
}
