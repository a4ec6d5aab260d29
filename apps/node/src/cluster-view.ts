import { createHash } from 'node:crypto';
import type { NodeId } from '@cohort/core';
import type { SlotMap } from '@cohort/kv';
import type { MemberView } from './membership-service.js';
import type { PartitionLayout } from './partition-layout.js';
import type { ClusterNode, ClusterReplica, ClusterView } from './resp/cluster-commands.js';

/** A node's 40-hex-digit Redis Cluster id: the SHA-1 of its Cohort id (stable, as clients expect). */
export function redisNodeId(id: NodeId): string {
  return createHash('sha1').update(id).digest('hex');
}

/** What this node knows of one of its partitions now. */
export interface PartitionState {
  /** The leader this node knows of; '' when none. */
  leader: NodeId;
  term: number;
  applied: number;
  /** The replicas: the group's voters as applied here, else the layout's. */
  replicas: NodeId[];
  /** When this node leads the partition and hands its leadership over: the voter it goes to. */
  transferee?: NodeId;
}

/** Options of {@link NodeClusterView}. */
export interface NodeClusterViewOptions {
  self: NodeId;
  slots: SlotMap;
  layout: PartitionLayout;
  /** This node's RESP address, as bound. */
  resp: () => string;
  /** Its peer (cluster bus) address. */
  peer: string;
  /** The founding members' RESP and peer addresses from the config, when it states them. */
  configured: ReadonlyMap<NodeId, { resp?: string; peer: string }>;
  members: () => MemberView[];
  partition: (p: number) => PartitionState;
}

function split(address: string | undefined): { host: string; port: number } {
  const m = address === undefined ? null : /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  return m ? { host: m[1]!, port: Number(m[2]) } : { host: '', port: 0 };
}

/**
 * The cluster as the Redis Cluster commands show it, from this node's
 * partitions' states and membership: a node's RESP address comes from its
 * `resp` membership tag (or the config's `clientAddress`), its liveness
 * from membership.
 */
export class NodeClusterView implements ClusterView {
  readonly slots: SlotMap;
  private readonly ids = new Map<NodeId, string>();

  constructor(private readonly o: NodeClusterViewOptions) {
    this.slots = o.slots;
  }

  private rid(id: NodeId): string {
    let r = this.ids.get(id);
    if (r === undefined) {
      r = redisNodeId(id);
      this.ids.set(id, r);
    }
    return r;
  }

  myId(): string {
    return this.rid(this.o.self);
  }

  /** Every node: the founding members and whoever membership knows. */
  private known(): Map<NodeId, { resp?: string; peer: string; alive: boolean }> {
    const out = new Map<NodeId, { resp?: string; peer: string; alive: boolean }>();
    for (const [id, c] of this.o.configured) out.set(id, { ...c, alive: false });
    for (const m of this.o.members()) {
      const prev = out.get(m.id);
      const resp = m.tags.resp ?? prev?.resp;
      out.set(m.id, { peer: m.address, alive: m.state === 'alive', ...(resp !== undefined ? { resp } : {}) });
    }
    out.set(this.o.self, { resp: this.o.resp(), peer: this.o.peer, alive: true });
    return out;
  }

  private respOf(id: NodeId, known = this.known()): string | undefined {
    return known.get(id)?.resp;
  }

  redirect(p: number): string | { ask: string } | undefined {
    const { leader, transferee } = this.o.partition(p);
    if (leader === '') return undefined;
    if (leader !== this.o.self) return this.respOf(leader);
    if (transferee === undefined || transferee === this.o.self) return undefined;
    const ask = this.respOf(transferee);
    return ask === undefined ? undefined : { ask };
  }

  replicas(p: number): ClusterReplica[] {
    const s = this.o.partition(p);
    const known = this.known();
    // The leader first; with none known, the preferred replica stands as the master.
    const order = [...s.replicas].sort((a, b) => {
      const rank = (id: NodeId) => (id === s.leader ? 0 : id === this.o.layout.replicas[p]?.[0] ? 1 : 2);
      return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
    });
    return order.map((id) => {
      const k = known.get(id);
      const { host, port } = split(k?.resp);
      return {
        id: this.rid(id),
        host,
        port,
        leader: id === s.leader,
        alive: k?.alive ?? false,
        offset: id === this.o.self ? s.applied : 0,
      };
    });
  }

  epoch(p: number): number {
    return this.o.partition(p).term;
  }

  nodes(): ClusterNode[] {
    return [...this.known()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, k]) => {
        const { host, port } = split(k.resp);
        return {
          id: this.rid(id),
          host,
          port,
          busPort: split(k.peer).port,
          self: id === this.o.self,
          alive: k.alive,
        };
      });
  }
}
