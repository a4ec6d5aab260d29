/** A pure, deterministic Raft consensus engine (step, tick, propose, ready/advance) in the manner of etcd/raft. */
export const PACKAGE = '@cohort/raft';
export type * from './types.js';
export { decodeConfChange, encodeConfChange } from './confchange/codec.js';
export type { ForcedConfiguration } from './force-config.js';
export { MemoryStorage } from './memory-storage.js';
export type { QuiesceHeartbeat } from './quiesce.js';
export { RawNode } from './raw-node.js';
export type { LeaseRead } from './lease.js';
export type { BasicStatus, LostEntries, ProgressStatus, Status } from './status.js';
export type { ProgressState } from './tracker/progress.js';
export * from './host/index.js';
