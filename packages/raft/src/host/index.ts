export type { EngineFactory, EngineStatus, RaftEngine } from './engine.js';
export type { CatchUp, GroupStatus, HostFaults, HostStats, ProposalTiming, RaftHostOptions } from './host-options.js';
export { RaftHost } from './raft-host.js';
export { type GroupStart, startGroup } from './group-startup.js';
export { rawNodeEngine, rawNodeFactory } from './raw-node-engine.js';
export type {
  AppliedState,
  ApplyOutcome,
  DurableStateMachine,
  SnapshotReader,
  SnapshotWriter,
} from './durable-state-machine.js';
export {
  type MembershipChange,
  type MembershipView,
  MembershipRefusedError,
  checkTransfer,
  planJointChange,
  planMembershipChange,
} from './membership-admin.js';
// The pacer lives in @cohort/core (the other engines' hosts share it); raft's export of it stays.
export { SnapshotPacer, type SnapshotPacerOptions } from '@cohort/core';
