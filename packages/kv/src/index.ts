/** The replicated key-value state machine and client API of Cohort: commands, exactly-once sessions, linearizable reads, partition routing. */
export const PACKAGE = '@cohort/kv';
export {
  type ExpireFlag,
  type KvCommand,
  type CompareOp,
  type KvCompare,
  type KvCondAction,
  type KvOp,
  type KvSession,
  type SetCondition,
  type TxnBranch,
  type TxnCompare,
  type WatchedKey,
  decodeCommand,
  encodeCommand,
} from './command.js';
export { MAX_VALUE_BYTES } from './apply-op.js';
export { COLLECTION_WRITES, type CollectionWrite, decodeItems, encodeItems } from './collections.js';
export { globMatch } from './glob.js';
export type { ExecRead } from './reads.js';
export {
  CROSSSLOT_MESSAGE,
  MAX_PARTITIONS,
  type Route,
  type RouteSplit,
  SINGLE_PARTITION,
  SLOTS,
  SlotMap,
  crc16,
  groupOfKey,
  partitionGroup,
  routeKeys,
  slotOfKey,
} from './routing.js';
export { DUPLICATE_ACKNOWLEDGED } from './session-apply.js';
export { KV_SNAPSHOT_FORMAT, type SnapshotChunk, decodeChunk } from './snapshot-codec.js';
export type { KvResult, TxnStepResult } from './result.js';
export { TxnCoordinator } from './txn/coordinator.js';
export { TxnRefusedError } from './txn/errors.js';
export { RESERVED_PREFIX, isReservedKey } from './txn/keyspace.js';
export type {
  TxnCoordinatorOptions,
  TxnKeyCompare,
  TxnParticipant,
  TxnReply,
  TxnRequest,
  TxnStepEvent,
} from './txn/types.js';
export { KvStateMachine, type KvStateMachineOptions } from './state-machine.js';
export {
  type KvReadOp,
  type KvRequest,
  type KvResponse,
  decodeBatchResponse,
  decodeForwardedRequest,
  decodeRequest,
  decodeResponse,
  encodeBatchRequest,
  encodeBatchResponse,
  encodeRequest,
  encodeResponse,
} from './request.js';
export { KvService, type KvServiceOptions, MAX_FORWARD_HOPS, serveForwardedRequests } from './kv-service.js';
export {
  type Admission,
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitBreakerStats,
  CircuitBreakers,
  type CircuitState,
  DEFAULT_CIRCUIT_BREAKER,
} from './circuit-breaker.js';
export {
  type ClientSession,
  type Deadline,
  type Expiry,
  InvalidExpireError,
  type KeyspaceScope,
  type KvClientRequest,
  type KvClientWrite,
  deadline,
  toCommand,
} from './client-request.js';
export { ExpirySweeper, type ExpirySweeperOptions, type SweeperStats } from './expiry-sweeper.js';
export {
  ConsistencyChecker,
  type ConsistencyCheckerOptions,
  type ConsistencyReport,
  DIGEST_PROTOCOL,
  type DigestSource,
  type KeyRange,
  type ReplicaDigest,
  decodeDigestRequest,
  decodeDigestResponse,
  encodeDigestRequest,
  encodeDigestResponse,
  serveDigestRequests,
} from './consistency-check.js';
export {
  type Compacted,
  type KvEvent,
  type KvEventListener,
  type WatchFilter,
  type WatchHandle,
  WatchHub,
  type WatchHubOptions,
  eventsFromEntries,
  watchMatches,
} from './watch-hub.js';
export { compareHolds } from './apply-op.js';
export { decodeRecord, encodeRecord } from './request.js';
export { remoteGroup } from './remote-group.js';
export { MetaStateMachine } from './meta/machine.js';
export {
  type FailureReport,
  VP_MASTER_SECTION,
  type VpHealth,
  type VpMasterCommand,
  type VpMasterSection,
  applyVpMaster,
  masterSection,
  vpaxosReplicas,
} from './vpaxos/master-extension.js';
export { VpMasterService, type VpMasterServiceOptions } from './vpaxos/master-service.js';
export { vpStateMachine } from './vpaxos/vp-state-machine.js';
export {
  DISK_FULL_TAG,
  META_GROUP,
  type MembershipView,
  type MetaBootstrap,
  MetaService,
  type MetaServiceOptions,
} from './meta/meta-service.js';
export {
  META_FORMAT,
  type MetaCommand,
  type MetaExtension,
  type MetaResult,
  type MetaState,
  type NodeRecord,
  type PartitionEngine,
  type PartitionEntry,
  type Replica,
  applyMeta,
  decodeMetaCommand,
  emptyMeta,
  encodeMetaCommand,
  moveRefusal,
  replicaNodes,
  upgradeMeta,
  votersOf,
} from './meta/state.js';
export {
  type Liveness,
  type MemberLiveness,
  type PlacementAction,
  type PlacementConfig,
  type PlacementInput,
  moveQuorumRefusal,
  nodeViews,
  planPlacement,
} from './placement/controller.js';
export { assignLeaders } from './placement/leaders.js';
export {
  type RecoveryDecision,
  type RecoveryPlan,
  RecoveryRefusal,
  type ReplicaPosition,
  planRecovery,
} from './placement/recovery.js';
export { replacementTarget } from './placement/replacement.js';
