/**
 * Interesting states a placement run can reach. The first group are the
 * sometimes-assertions a batch of seeds must reach; the rest say how much
 * of each a batch exercised.
 */
export const PLACEMENT_COVERAGE_KINDS = [
  // A crashed node's replicas were all replaced on live nodes while it stayed down.
  'deadReplaced',
  // The meta leader crashed while a repair was under way, and the repair completed under its successor.
  'repairAfterMetaCrash',
  // A node marked leaving ended with no replica and no meta vote, and was stopped.
  'leaveCompleted',
  // A joined node was given replicas by rebalancing.
  'joinRebalanced',
  // A node restarted within the grace period and no replica moved meanwhile.
  'restartNoMove',
  // A node cut off past the grace period had its replicas replaced.
  'isolatedReplaced',
  // A forward routed by an older partition map was refused (STALE_EPOCH).
  'staleRejected',
  // After the joins, every partition was led by its assigned voter, and every node led at most ceil(P/N)+1.
  'leadersBalanced',
  // Counts.
  'joined',
  // A learner replaced a partition voter in one joint configuration change.
  'jointReplaced',
  // The map was set to a partition group's configuration, which a change made but never recorded had left different.
  'mapCorrected',
  'reconfiguration',
  'metaLeaderChange',
  'readServed',
] as const;

export type PlacementCoverageKind = (typeof PLACEMENT_COVERAGE_KINDS)[number];

/** Counts of each {@link PlacementCoverageKind}. */
export type PlacementCoverage = Record<PlacementCoverageKind, number>;

export function emptyPlacementCoverage(): PlacementCoverage {
  const c = {} as PlacementCoverage;
  for (const k of PLACEMENT_COVERAGE_KINDS) c[k] = 0;
  return c;
}

/** Adds `b` into `a`. */
export function addPlacementCoverage(a: PlacementCoverage, b: PlacementCoverage): void {
  for (const k of PLACEMENT_COVERAGE_KINDS) a[k] += b[k];
}

/** The kinds with fewer than `min` occurrences. */
export function missingPlacementCoverage(
  c: PlacementCoverage,
  min: Partial<PlacementCoverage>,
): PlacementCoverageKind[] {
  return PLACEMENT_COVERAGE_KINDS.filter((k) => c[k] < (min[k] ?? 0));
}
