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
] as const;

export type VpCoverageKind = (typeof VP_COVERAGE_KINDS)[number];
export type VpCoverage = Record<VpCoverageKind, number>;

export function emptyVpCoverage(): VpCoverage {
  const c = {} as VpCoverage;
  for (const k of VP_COVERAGE_KINDS) c[k] = 0;
  return c;
}

export function addVpCoverage(a: VpCoverage, b: VpCoverage): void {
  for (const k of VP_COVERAGE_KINDS) a[k] += b[k];
}

/** The kinds never reached. */
export function missingVpCoverage(c: VpCoverage): VpCoverageKind[] {
  return VP_COVERAGE_KINDS.filter((k) => c[k] === 0);
}
