import type { NodeId } from '@cohort/core';

/** What happened, as the dashboard's event list shows it. */
export type ClusterEventBody =
  /** A group's leader as this node learnt it (`group`: `meta` or a partition's group). */
  | { type: 'leader'; group: string; leader: NodeId; term: number }
  /** A member's state in this node's membership view changed (`joined`: first seen). */
  | { type: 'member'; node: NodeId; state: 'joined' | 'alive' | 'suspect' | 'dead' | 'left'; incarnation: number }
  /** A partition's replicas changed in the partition map (a replica added, promoted, removed or replaced). */
  | { type: 'replicas'; partition: number; epoch: number; before: string[]; after: string[] }
  /** Snapshots this node took, or installed from a leader, since the previous event of the kind. */
  | { type: 'snapshot'; kind: 'taken' | 'installed'; count: number };

/** One event of the log: its body, a sequence number (from 1) and when it was recorded. */
export type ClusterEvent = ClusterEventBody & { seq: number; t: number; message: string };

/** One line for an event, as an operator reads it. */
export function describeEvent(e: ClusterEventBody): string {
  switch (e.type) {
    case 'leader':
      return `${e.group}: ${e.leader} leads (term ${e.term})`;
    case 'member':
      return e.state === 'joined' ? `${e.node} joined` : `${e.node} is ${e.state} (incarnation ${e.incarnation})`;
    case 'replicas':
      return `p${e.partition}: replicas ${e.before.join(', ') || 'none'} -> ${e.after.join(', ') || 'none'} (epoch ${e.epoch})`;
    case 'snapshot':
      return e.kind === 'taken' ? `${e.count} snapshot(s) taken here` : `${e.count} snapshot(s) installed here`;
    default: {
      const never: never = e;
      return String(never);
    }
  }
}

/**
 * A bounded in-memory log of the cluster events this node saw, newest last:
 * past `capacity` the oldest are dropped. Read with {@link since}, from the
 * last sequence number a reader has.
 */
export class EventLog {
  private readonly ring: (ClusterEvent | undefined)[];
  private next = 0;
  private size = 0;
  private seq = 0;

  /** @param capacity events kept. @default 500 */
  constructor(
    capacity = 500,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('event log: capacity must be >= 1');
    this.ring = new Array(capacity);
  }

  /** Records an event; returns it with its sequence number. */
  push(body: ClusterEventBody): ClusterEvent {
    const e: ClusterEvent = { ...body, seq: ++this.seq, t: this.now(), message: describeEvent(body) };
    this.ring[this.next] = e;
    this.next = (this.next + 1) % this.ring.length;
    this.size = Math.min(this.size + 1, this.ring.length);
    return e;
  }

  /** The events after sequence number `after` still held, oldest first, and the last sequence number. */
  since(after = 0): { events: ClusterEvent[]; last: number } {
    const cap = this.ring.length;
    const events: ClusterEvent[] = [];
    for (let i = 0; i < this.size; i++) {
      const e = this.ring[(this.next - this.size + i + cap) % cap]!;
      if (e.seq > after) events.push(e);
    }
    return { events, last: this.seq };
  }
}
