import type { NodeId } from '@cohort/core';
import type { PartitionStatus } from './cohort-node.js';

/** A partition as its leader reports it, else as this node sees it; `reportedBy` names whose view it is. */
export type ReportedPartition = PartitionStatus & { reportedBy: NodeId };

/** Options of {@link partitionsFromLeaders}. */
export interface LeaderViewOptions {
  self: NodeId;
  /** This node's view of every partition (`GET /v1/partitions`). */
  local: PartitionStatus[];
  /** A member's HTTP address (`host:port`), from its membership tags. */
  httpOf: (id: NodeId) => string | undefined;
  /** `http` or `https`, as this node serves. */
  scheme: 'http' | 'https';
  /** Sent on as it came, so the leaders check the same token. */
  authorization?: string;
  /** How long a leader may take to answer before this node's own view stands in. @default 1000 */
  timeoutMs?: number;
}

/**
 * Every partition as its leader reports it: only the leader knows how far
 * each replica is behind (`lag`) and its watermarks are the partition's. A
 * partition this node leads is answered from here; the others from one
 * `GET /v1/partitions` to each leader's node, asked at once. A leader that
 * does not answer in time (dead, partitioned, no longer leading) leaves this
 * node's view of the partition in place.
 */
export async function partitionsFromLeaders(o: LeaderViewOptions): Promise<ReportedPartition[]> {
  const byLeader = new Map<NodeId, number[]>();
  for (const p of o.local) {
    if (p.role === 'leader' || p.leader === undefined || p.leader === '' || p.leader === o.self) continue;
    const list = byLeader.get(p.leader) ?? [];
    list.push(p.partition);
    byLeader.set(p.leader, list);
  }
  const remote = new Map<number, ReportedPartition>();
  await Promise.all(
    [...byLeader.keys()].map(async (leader) => {
      const address = o.httpOf(leader);
      if (address === undefined) return;
      try {
        const res = await fetch(`${o.scheme}://${address}/v1/partitions`, {
          headers: o.authorization !== undefined ? { authorization: o.authorization } : {},
          signal: AbortSignal.timeout(o.timeoutMs ?? 1000),
        });
        if (!res.ok) return;
        const body = (await res.json()) as { partitions?: PartitionStatus[] };
        for (const p of body.partitions ?? []) {
          if (p.role === 'leader' && byLeader.get(leader)?.includes(p.partition)) {
            remote.set(p.partition, { ...p, reportedBy: leader });
          }
        }
      } catch {
        // Unreachable or slow: this node's own view stands.
      }
    }),
  );
  return o.local.map((p) => remote.get(p.partition) ?? { ...p, reportedBy: o.self });
}
