/** SWIM membership simulation: whole clusters of Swim engines on the simulator, scenarios and the README table. */
export {
  type ChurnResult,
  churn,
  type DetectionResult,
  detection,
  type MassFailureResult,
  massFailure,
  type PartitionResult,
  partition,
  type StabilityResult,
  stability,
} from './scenarios.js';
export { median, percentile } from './stats.js';
export { type Observation, type SimMember, SwimCluster, type SwimClusterOptions } from './swim-cluster.js';
export { fullTable, spliceTable, swimTable, type TableOptions } from './table.js';
