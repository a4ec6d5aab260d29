import type { LogIndex, NodeId, Term } from '@cohort/core';
import type { KvClientRequest, KvResponse } from '@cohort/kv';

/** What `/v1/status` and INFO report about this node. */
export interface NodeStatus {
  id: NodeId;
  role: string;
  term: Term;
  /** The leader this node knows of; '' when none. */
  leader: NodeId;
  commit: LogIndex;
  applied: LogIndex;
}

/**
 * The node as the client front ends (RESP, HTTP) see it: every request is
 * served linearizably, by this node when it leads, or forwarded to the leader.
 */
export interface KvApi {
  execute(req: KvClientRequest): Promise<KvResponse>;
  status(): NodeStatus;
}
