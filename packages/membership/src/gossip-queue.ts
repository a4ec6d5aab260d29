import type { NodeId } from '@cohort/core';
import { wireSize } from './codec.js';
import type { MemberUpdate } from './types.js';

/**
 * Dissemination priority; lower value is sent first. A refutation (an alive
 * update that supersedes an accusation) goes before everything else, the
 * accusations included: it cancels them, and under heavy loss a backlog of
 * accusations must not hold it back until their suspicion timeouts expire.
 */
export const Priority = { Refutation: 0, Critical: 1, High: 2, Medium: 3, Low: 4 } as const;
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
 * Entries sit in buckets by (priority, times sent), so picking the next
 * updates costs what is picked, not the size of the queue.
 */
export class GossipQueue {
  private readonly maxPerMessage: number;
  private readonly maxBytes: number;
  private readonly retransmitMult: number;
  private readonly capacity: number;
  private readonly entries = new Map<NodeId, Entry>();
  /** buckets[priority][transmits]: entries in arrival order. */
  private readonly buckets: Set<Entry>[][] = Object.values(Priority).map(() => []);

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
    const old = this.entries.get(update.id);
    if (old) this.remove(old);
    const e: Entry = { update, priority, size: updateSize(update), transmits: 0 };
    this.entries.set(update.id, e);
    this.bucket(e).add(e);
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
   * Takes the updates for one message: most urgent first, then least sent,
   * then oldest; within the count and byte limits (`reservedBytes` of the
   * budget are already used). The update about `first`, when queued, is
   * taken before all others (a member's own refutation). Counts a
   * transmission for each and drops those sent enough times for a cluster of
   * `clusterSize`.
   */
  select(clusterSize: number, reservedBytes = 0, exclude?: NodeId, first?: NodeId): MemberUpdate[] {
    if (this.entries.size === 0) return [];
    const limit = retransmitLimit(this.retransmitMult, clusterSize);
    const picked: Entry[] = [];
    let bytes = reservedBytes;
    const pinned = first === undefined || first === exclude ? undefined : this.entries.get(first);
    if (pinned && this.maxPerMessage > 0 && bytes + pinned.size <= this.maxBytes) {
      bytes += pinned.size;
      picked.push(pinned);
    }
    outer: for (const byTransmits of this.buckets) {
      for (const bucket of byTransmits) {
        if (!bucket) continue;
        for (const e of bucket) {
          if (picked.length >= this.maxPerMessage) break outer;
          if (e === pinned || e.update.id === exclude || bytes + e.size > this.maxBytes) continue;
          bytes += e.size;
          picked.push(e);
        }
      }
    }
    for (const e of picked) {
      this.bucket(e).delete(e);
      e.transmits += 1;
      if (e.transmits >= limit) this.entries.delete(e.update.id);
      else this.bucket(e).add(e);
    }
    return picked.map((e) => e.update);
  }

  private bucket(e: Entry): Set<Entry> {
    const byTransmits = this.buckets[e.priority] as Set<Entry>[];
    let b = byTransmits[e.transmits];
    if (!b) {
      b = new Set();
      byTransmits[e.transmits] = b;
    }
    return b;
  }

  private remove(e: Entry): void {
    this.bucket(e).delete(e);
    this.entries.delete(e.update.id);
  }

  private evictOne(): void {
    for (let p = this.buckets.length - 1; p >= 0; p--) {
      const byTransmits = this.buckets[p] as Set<Entry>[];
      for (let t = byTransmits.length - 1; t >= 0; t--) {
        const victim = byTransmits[t]?.values().next().value;
        if (victim) {
          this.remove(victim);
          return;
        }
      }
    }
  }
}
