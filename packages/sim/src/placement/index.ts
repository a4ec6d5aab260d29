/** Partitioned clusters in the simulator: the meta group, the placement controller and the partitions. */
export {
  PLACEMENT_COVERAGE_KINDS,
  type PlacementCoverage,
  type PlacementCoverageKind,
  missingPlacementCoverage,
} from './coverage.js';
export { PLACEMENT_GOALS } from './goals.js';
export { SimLiveness } from './liveness.js';
export { PlacementCluster, type PlacementClusterConfig, type Reconfiguration } from './placement-cluster.js';
export { type PlacementMutations, SimPlacementNode } from './placement-node.js';
export {
  EPISODES,
  type Episode,
  type PlacementBatchSummary,
  type PlacementRunOptions,
  type PlacementSeedResult,
  placementConfig,
  placementReplayCommand,
  runPlacementSeed,
  runPlacementSeeds,
} from './placement-run.js';
