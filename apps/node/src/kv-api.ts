import type { LogIndex, NodeId, QuorumStatus, Term } from '@cohort/core';
import type { ConsistencyReport, KvClientRequest, KvResponse } from '@cohort/kv';

/** A read request as the front ends send it. */
export type KvReadRequest = Extract<KvClientRequest, { kind: 'read' }>;

/** What `/v1/status` and INFO report about this node. */
export interface NodeStatus {
  id: NodeId;
  role: string;
  term: Term;
  /** The leader this node knows of; '' when none. */
  leader: NodeId;
  commit: LogIndex;
  applied: LogIndex;
  /** This replica found its copy of the data corrupt and is restoring it from a healthy replica; it serves nothing meanwhile. */
  repairing?: boolean;
  /** Rows this replica's state machine holds, expired ones the sweeper has not deleted yet included. */
  keys?: number;
  /** The consistency checks this node ran, when it runs them. */
  consistency?: ConsistencyStatus;
  /** Whether this node reaches a quorum now (what `/readyz` answers from). */
  quorum?: QuorumStatus;
  /** The group's voters and learners as this node applied them; the previous voters while a change is joint. */
  voters?: NodeId[];
  learners?: NodeId[];
  votersOutgoing?: NodeId[];
  /** The key space's partitions, when more than one (the fields above are about the first, p0). */
  partitions?: number;
  /** What this node cannot do now: `disk-full` (it refuses writes and serves reads). */
  degraded?: string[];
  /** While `disk-full`: why (free space under the reserve, or a commit waiting for space with SQLite's reason). */
  diskFull?: string;
}

/** What a node reports of the consistency checks it ran. */
export interface ConsistencyStatus {
  checks: number;
  mismatches: number;
  /** The last check's verdict and index. */
  last?: Pick<ConsistencyReport, 'verdict' | 'index' | 'checkedAt'>;
  /** The last mismatch: the group and key range whose replicas disagree. */
  lastMismatch?: Pick<ConsistencyReport, 'group' | 'index' | 'keyRange' | 'replicas' | 'checkedAt'>;
}

/** The admin operations the HTTP front end exposes. */
export interface AdminApi {
  /** Runs a consistency check of the group's replicas now. */
  checkConsistency(): Promise<ConsistencyReport>;
}

/**
 * The node as the client front ends (RESP, HTTP) see it: every request is
 * served linearizably, by this node when it leads, or forwarded to the leader.
 */
export interface KvApi {
  execute(req: KvClientRequest): Promise<KvResponse>;
  /**
   * Serves a pipeline: answers each request as if it was sent once the one
   * before it was answered (a read sees the writes before it and none after
   * it), in order, sharing Raft rounds where that allows.
   */
  executeAll(reqs: KvClientRequest[]): Promise<KvResponse[]>;
  status(): NodeStatus;
}

/** Reads that skip the linearizable path. */
export interface ReadApi {
  /** Served by this replica from its state machine as it stands; the answer reports the applied index. */
  stale(req: KvReadRequest): KvResponse;
  /**
   * Served by the leader without a ReadIndex round while its lease holds,
   * checked against the monotonic clock when the read is served; a follower
   * forwards nothing and answers NOT_LEADER naming the leader.
   */
  lease(req: KvReadRequest): Promise<KvResponse>;
}
