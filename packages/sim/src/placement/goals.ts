import type { PlacementCoverage } from './coverage.js';

/** The sometimes-assertions: each must be reached at least once in a batch of seeds. */
export const PLACEMENT_GOALS: Partial<PlacementCoverage> = {
  deadReplaced: 1,
  repairAfterMetaCrash: 1,
  leaveCompleted: 1,
  joinRebalanced: 1,
  restartNoMove: 1,
  isolatedReplaced: 1,
  staleRejected: 1,
  leadersBalanced: 1,
  jointReplaced: 1,
};
