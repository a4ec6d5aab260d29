/**
 * @cohort/sim: deterministic simulation. Generic parts (scheduler, clock,
 * network, linearizability checker) are engine-agnostic; `raft/` runs whole
 * Raft clusters from a seed under faults and checks them.
 */
export const PACKAGE = '@cohort/sim';
export { SimClock, type SimClockOptions } from './clock.js';
export {
  InvariantViolationError,
  LinearizabilityViolationError,
  RunFailedError,
  type RunPosition,
} from './errors.js';
export { type CheckOptions, type LinearizabilityResult, checkLinearizable } from './lin/checker.js';
export type { KvInput, KvOperation, Operation } from './lin/history.js';
export { type Model, kvModel, prunedKvHistory } from './lin/model.js';
export {
  type MultiKvInput,
  type MultiKvOperation,
  type MultiKvOutput,
  type MultiKvState,
  type TxnOutcome,
  type TxnWrite,
  keysOf,
  multiKvModel,
  prunedMultiKvHistory,
} from './lin/multi-model.js';
export { type Deliver, type LinkFaults, type NetworkStats, SimNetwork } from './network.js';
export { type ClusterConfig, RaftCluster, type RunRandoms } from './raft/cluster.js';
export type { EngineMutations } from './raft/observed-engine.js';
export { type NodeEnv, SimRaftNode } from './raft/sim-node.js';
export type { FaultKind } from './raft/scenario.js';
export { RequestIds, type SimFrame, SimTransport, type SimTransportOptions } from './transport/sim-transport.js';
export { COVERAGE_KINDS, type Coverage, type CoverageKind, missingCoverage } from './raft/coverage.js';
export { RaftInvariants } from './raft/invariants.js';
export {
  type BatchSummary,
  type RunOptions,
  type SeedResult,
  addToSummary,
  emptySummary,
  runSeed,
  runSeeds,
  seedConfig,
} from './raft/run.js';
export { type EventHandle, Scheduler, drainMicrotasks } from './scheduler.js';
export { TraceHash, hashBytes } from './trace.js';
export * as swim from './swim/index.js';
export * as vpaxos from './vpaxos/index.js';
export { type TxnCoverage, type TxnRunOptions, type TxnSeedResult, runTxnSeed } from './raft/txn-run.js';
export * as placement from './placement/index.js';
