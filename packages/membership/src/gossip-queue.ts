import type { NodeId } from '@cohort/core';
import { wireSize } from './codec.js';
import type { MemberUpdate } from './types.js';

/** Dissemination priority; lower value is sent first. */
export const Priority = { Critical: 0, High: 1, Medium: 2, Low: 3 } as const;
export type Priority = (typeof Priority)[keyof typeof Priority];

/** Options of {@link GossipQueue}. */
export interface GossipQueueOptions {
  /** Updates per message at most. @default 20 */
  readonly maxPerMessage?: number;
  /** Encoded bytes of piggybacked updates per message at most. @default 4096 */
  readonly maxBytes?: number;
  /** Each update is sent retransmitMult x ceil(log10(N + 1)) times. @default 4 */
  readonly retransmitMult?: number;
  /** Queued updates at most; beyond it the least urgent, most sent one is dropped. @default 4096 */
  readonly capacity?: number;
}

interface Entry {
  readonly update: MemberUpdate;
  readonly priority: Priority;
  readonly order: number;
  readonly size: number;
  transmits: number;
}

/** Encoded size of one update, used for the per-message byte budget. */
export function updateSize(u: MemberUpdate): number {
  return wireSize(u);
}

/** How many times each update is retransmitted in a cluster of `n` members. */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.max(1, Math.ceil(Math.log10(n + 1)));
}

/**
 * The bounded, prioritized queue of updates piggybacked on protocol messages.
 * One entry per member: a newer update about a member replaces the older one.
 */
export class GossipQueue {
  private readonly maxPerMessage: number;
  private readonly maxBytes: number;
  private readonly retransmitMult: number;
  private readonly capacity: number;
  private readonly entries = new Map<NodeId, Entry>();
  private counter = 0;

  constructor(options: GossipQueueOptions = {}) {
    this.maxPerMessage = options.maxPerMessage ?? 20;
    this.maxBytes = options.maxBytes ?? 4096;
    this.retransmitMult = options.retransmitMult ?? 4;
    this.capacity = options.capacity ?? 4096;
  }

  /** Queued updates. */
  get size(): number {
    return this.entries.size;
  }

  /** Queues `update` (replacing any queued update about the same member). */
  enqueue(update: MemberUpdate, priority: Priority): void {
    this.entries.delete(update.id);
    this.entries.set(update.id, { update, priority, order: this.counter++, size: updateSize(update), transmits: 0 });
    if (this.entries.size > this.capacity) this.evictOne();
  }

  /** The queued update about `id`, if any. */
  peek(id: NodeId): MemberUpdate | undefined {
    return this.entries.get(id)?.update;
  }

  /** How many times the update about `id` has been sent so far (undefined when none is queued). */
  transmitsOf(id: NodeId): number | undefined {
    return this.entries.get(id)?.transmits;
  }

  /**
   * Takes the updates for one message: most urgent first, then least sent, then
   * newest; within the count and byte limits (`reservedBytes` of the budget are
   * already used). Counts a transmission for each and drops those sent enough
   * times for a cluster of `clusterSize`.
   */
  select(clusterSize: number, reservedBytes = 0, exclude?: NodeId): MemberUpdate[] {
    if (this.entries.size === 0) return [];
    const limit = retransmitLimit(this.retransmitMult, clusterSize);
    const sorted = [...this.entries.values()].sort(
      (a, b) => a.priority - b.priority || a.transmits - b.transmits || b.order - a.order,
    );
    const out: MemberUpdate[] = [];
    let bytes = reservedBytes;
    for (const e of sorted) {
      if (out.length >= this.maxPerMessage) break;
      if (e.update.id === exclude) continue;
      if (bytes + e.size > this.maxBytes) continue;
      bytes += e.size;
      out.push(e.update);
      e.transmits += 1;
      if (e.transmits >= limit) this.entries.delete(e.update.id);
    }
    return out;
  }

  private evictOne(): void {
    let victim: Entry | undefined;
    for (const e of this.entries.values()) {
      if (
        victim === undefined ||
        e.priority > victim.priority ||
        (e.priority === victim.priority && e.transmits > victim.transmits)
      ) {
        victim = e;
      }
    }
    if (victim) this.entries.delete(victim.update.id);
  }
}
