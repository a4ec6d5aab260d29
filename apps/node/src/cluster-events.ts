import type { NodeId } from '@cohort/core';
import type { PartitionEntry } from '@cohort/kv';
import type { EventLog } from './event-log.js';
import type { MemberView } from './membership-service.js';

/** Where {@link ClusterEventWatch} reads the node's state each round. */
export interface ClusterEventSources {
  members(): MemberView[];
  /** The partition map as the meta group applied it here (empty before the cluster was founded). */
  partitions(): readonly PartitionEntry[];
  /** Snapshots taken here and installed from a leader, running totals. */
  snapshots(): { taken: number; installed: number };
}

/**
 * Turns what a node sees into the events of its {@link EventLog}: leader
 * changes as the Raft host reports them, and, each {@link poll}, the
 * differences since the previous poll of the member list (joined, suspect,
 * dead, alive again, left), of the partition map's replicas, and of the
 * snapshot counters.
 */
export class ClusterEventWatch {
  private readonly leaders = new Map<string, NodeId>();
  private members = new Map<NodeId, { state: MemberView['state']; incarnation: number }>();
  private replicas: string[][] | undefined;
  private snapshots: { taken: number; installed: number } | undefined;

  constructor(
    private readonly log: EventLog,
    private readonly sources: ClusterEventSources,
  ) {}

  /** A group's leader or this node's role in it changed; recorded when the leader is a new one. */
  leaderChanged(group: string, leader: NodeId, term: number): void {
    if (leader === '' || this.leaders.get(group) === leader) return;
    this.leaders.set(group, leader);
    this.log.push({ type: 'leader', group, leader, term });
  }

  /** Records what changed since the previous poll. */
  poll(): void {
    const seen = new Map<NodeId, { state: MemberView['state']; incarnation: number }>();
    for (const m of this.sources.members()) {
      seen.set(m.id, { state: m.state, incarnation: m.incarnation });
      const before = this.members.get(m.id);
      if (before === undefined) {
        this.log.push({ type: 'member', node: m.id, state: 'joined', incarnation: m.incarnation });
        if (m.state !== 'alive')
          this.log.push({ type: 'member', node: m.id, state: m.state, incarnation: m.incarnation });
      } else if (before.state !== m.state) {
        this.log.push({ type: 'member', node: m.id, state: m.state, incarnation: m.incarnation });
      }
    }
    this.members = seen;

    const parts = this.sources.partitions();
    const now = parts.map((p) => p.replicas.map((r) => (r.role === 'voter' ? r.node : `${r.node} (learner)`)));
    if (this.replicas !== undefined) {
      now.forEach((after, index) => {
        const before = this.replicas?.[index];
        if (before !== undefined && before.join(',') !== after.join(',')) {
          this.log.push({ type: 'replicas', partition: index, epoch: parts[index]?.epoch ?? 0, before, after });
        }
      });
    }
    if (parts.length > 0) this.replicas = now;

    const snaps = this.sources.snapshots();
    if (this.snapshots !== undefined) {
      const taken = snaps.taken - this.snapshots.taken;
      const installed = snaps.installed - this.snapshots.installed;
      if (taken > 0) this.log.push({ type: 'snapshot', kind: 'taken', count: taken });
      if (installed > 0) this.log.push({ type: 'snapshot', kind: 'installed', count: installed });
    }
    this.snapshots = snaps;
  }
}
