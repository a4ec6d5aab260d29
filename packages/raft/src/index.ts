/** A pure, deterministic Raft consensus engine (step, tick, propose, ready/advance) in the manner of etcd/raft, and a host that drives it. */
export const PACKAGE = '@cohort/raft';
export type * from './types.js';
