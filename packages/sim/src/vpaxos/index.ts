/** Vertical Paxos II under simulation: a group of production hosts, the master as a reliable process or on a simulated meta group, invariants. */
export {
  DEPTH_BUCKETS,
  VP_COVERAGE_KINDS,
  VP_META_COVERAGE_KINDS,
  type VpCoverage,
  type VpCoverageKind,
  depthBucket,
  missingVpCoverage,
} from './coverage.js';
export { type VpClusterConfig, VpCluster, maxDriftMs } from './cluster.js';
export { VpInvariants } from './invariants.js';
export { SimAcceptorStore } from './sim-acceptor-store.js';
export { SimMaster } from './sim-master.js';
export { SimMetaPart, type VpMetaEnv } from './sim-meta-master.js';
export { MASTER_ID, SimVpNode, VP_GROUP } from './sim-vp-node.js';
export { SimKv, type SimKvImage } from './sim-kv.js';
export {
  type VpBatchSummary,
  type VpRunOptions,
  type VpSeedResult,
  runVpSeed,
  runVpSeeds,
  vpReplayCommand,
  vpSeedConfig,
} from './run.js';
