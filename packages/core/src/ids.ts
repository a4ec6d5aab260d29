/**
 * Value types shared by every Cohort package. They are plain aliases so that
 * engines stay cheap to drive from tests; hosts validate them at the edge.
 */

/** A node's stable, human-chosen id (for example `n1`). Never empty. */
export type NodeId = string;

/** A replication group's id: `meta` for the meta group, `p<N>` for partition N. */
export type GroupId = string;

/** A Raft term (or Vertical Paxos ballot number). Starts at 0, never decreases. */
export type Term = number;

/** A 1-based log position; 0 means "before the first entry". */
export type LogIndex = number;

/** Marks "no node" where a NodeId is expected (for example no vote cast yet). */
export const NO_NODE: NodeId = '';
