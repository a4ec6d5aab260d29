/** The API's answers as the dashboard reads them (see apps/node: /v1/members, /v1/partitions, /v1/meta, ...). */

export interface Member {
  id: string;
  address: string;
  state: 'alive' | 'suspect' | 'dead' | 'left';
  incarnation: number;
  tags: Record<string, string>;
  /** Phi of the failure detector, when the node reports it. */
  phi?: number;
}

export interface Partition {
  partition: number;
  group: string;
  slots: { first: number; last: number };
  replicas: string[];
  learners?: string[];
  local: boolean;
  epoch?: number;
  lastIndex?: number;
  lag?: Record<string, number>;
  role?: string;
  leader?: string;
  term?: number;
  commit?: number;
  applied?: number;
  quiescent?: boolean;
  quorum?: string;
  stuck?: boolean;
  /** How long the leader has led, or the partition has had none, as the reporting node knows (ms). */
  leaderForMs?: number;
  leaderlessForMs?: number;
  /** The last failover the reporting node saw, from losing the leader to knowing the next (ms); leader changes it saw. */
  lastFailoverMs?: number;
  leaderChanges?: number;
  /** The engine (raft, vpaxos), when the node reports it. */
  engine?: string;
  /** Whose view this is (the partition's leader when it answered). */
  reportedBy?: string;
}

export interface MetaReplica {
  node: string;
  role: 'voter' | 'learner';
}

export interface Meta {
  clusterId: string;
  replicationFactor: number;
  nodes: Record<string, { id: string; http?: string; resp?: string; peerAddress: string; leaving?: boolean }>;
  partitions: {
    replicas: MetaReplica[];
    epoch: number;
    leader?: string;
    engine?: string;
    move?: { from: string; to: string };
  }[];
  /** The meta group's leader and term as the node sees them (no leader: absent). */
  leader?: string;
  term?: number;
}

export interface Status {
  id: string;
  role: string;
  term: number;
  leader: string;
  commit: number;
  applied: number;
  partitions?: number;
  degraded?: string[];
}

export interface MetricsSample {
  t: number;
  requestsPerSec: number;
  p50Ms?: number;
  p99Ms?: number;
  proposalsPerSec: number;
  commitsPerSec: number;
  fsyncsPerSec: number;
  fsyncMs?: number;
}

export interface ClusterEvent {
  seq: number;
  t: number;
  type: 'leader' | 'member' | 'replicas' | 'snapshot';
  message: string;
}
