/**
 * @cohort/vpaxos: Vertical Paxos II (Lamport, Malkhi, Zhou, PODC 2009) for
 * primary-backup partitions of f+1 replicas. A pure engine like @cohort/raft
 * ({@link VPaxosEngine}: acceptor, primary, CatchUp, read confirmation), the
 * configuration master as a pure state machine ({@link ConfigMaster}), the
 * wire codec, and the host that drives an engine with a Clock, a Transport
 * and an acceptor store ({@link VPaxosHost}).
 */
export const PACKAGE = '@cohort/vpaxos';
export * from './types.js';
export * from './errors.js';
export {
  type AcceptorState,
  type BallotAssignment,
  type EngineOptions,
  type EngineStats,
  NOOP,
  type Outbound,
  type Ready,
  VPaxosEngine,
} from './engine.js';
export {
  ConfigMaster,
  type GroupConfigState,
  type LeaseGrant,
  type MasterCommand,
  type MasterOptions,
  type MasterResult,
} from './master.js';
export {
  type MasterMessage,
  VP_MASTER_PROTOCOL,
  VP_PROTOCOL,
  VP_WIRE_VERSION,
  decodeMasterMessage,
  decodeMessage,
  encodeMasterMessage,
  encodeMessage,
  peekGroup,
} from './codec.js';
export * from './host/index.js';
