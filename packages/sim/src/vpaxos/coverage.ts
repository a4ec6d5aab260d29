/** Interesting states a Vertical Paxos run can reach; a batch of seeds must reach each of them. */
export const VP_COVERAGE_KINDS = [
  'slotChosen',
  'failoverCompleted',
  'leaseWaitThenActivated',
  'backupCaughtUp',
  'threeFailovers',
  'linearizableRead',
  'leaseRead',
  'ballotAbandoned',
  'staleMessageIgnored',
  'crashRestart',
  // Exploration: every backup of the active configuration applied the primary's commit at once;
  // proposals in flight while every acceptor was up and reachable.
  'allBackupsCaughtUp',
  'quorumHealthyInFlight',
  // Compaction (in the seeds that turn it on): an acceptor dropped its votes behind its applied slot,
  // and a replica lacking compacted slots installed a snapshot.
  'acceptorCompacted',
  'snapshotInstalled',
] as const;

/**
 * Reached only with the master on the meta group: the meta group founded the
 * master; its leader crashed while a failover ballot was pending; and that
 * failover (or a later one) still completed.
 */
export const VP_META_COVERAGE_KINDS = [
  'metaGroupFounded',
  'metaLeaderKilledMidFailover',
  'metaLeaderKilledInFailover',
] as const;

/** Buckets of how deep a run went: activated ballots and chosen slots. */
export const DEPTH_BUCKETS = ['1', '2-3', '4-7', '8-15', '16-63', '64-255', '256+'] as const;

/** The bucket of a count (0 counts as 1). */
export function depthBucket(n: number): (typeof DEPTH_BUCKETS)[number] {
  if (n <= 1) return '1';
  if (n <= 3) return '2-3';
  if (n <= 7) return '4-7';
  if (n <= 15) return '8-15';
  if (n <= 63) return '16-63';
  if (n <= 255) return '64-255';
  return '256+';
}

export type VpCoverageKind = (typeof VP_COVERAGE_KINDS)[number] | (typeof VP_META_COVERAGE_KINDS)[number];
const ALL_KINDS: readonly VpCoverageKind[] = [...VP_COVERAGE_KINDS, ...VP_META_COVERAGE_KINDS];
export type VpCoverage = Record<VpCoverageKind, number>;

export function emptyVpCoverage(): VpCoverage {
  const c = {} as VpCoverage;
  for (const k of ALL_KINDS) c[k] = 0;
  return c;
}

export function addVpCoverage(a: VpCoverage, b: VpCoverage): void {
  for (const k of ALL_KINDS) a[k] += b[k];
}

/** The kinds never reached (with `meta`, the meta group master's kinds too). */
export function missingVpCoverage(c: VpCoverage, meta = false): VpCoverageKind[] {
  return (meta ? ALL_KINDS : VP_COVERAGE_KINDS).filter((k) => c[k] === 0);
}
