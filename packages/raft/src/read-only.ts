import type { LogIndex, Message, NodeId } from '@cohort/core';

/** A pending ReadIndex request: the commit index at receipt and who confirmed leadership since. */
interface ReadIndexStatus {
  req: Message;
  index: LogIndex;
  acks: Set<NodeId>;
}

/** Request contexts are bytes; they key pending reads as hex strings. */
export function contextKey(ctx: Uint8Array): string {
  return Buffer.from(ctx).toString('hex');
}

/**
 * ReadIndex bookkeeping (§6.4): a read waits until a quorum answers a
 * heartbeat sent after it arrived, proving this node still led when it did.
 */
export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  private readonly queue: string[] = [];

  /** Registers a read at the current commit index; duplicates of a pending context are ignored. */
  addRequest(index: LogIndex, req: Message): void {
    const key = contextKey(req.context);
    if (this.pending.has(key)) return;
    this.pending.set(key, { req, index, acks: new Set() });
    this.queue.push(key);
  }

  /** Records that `from` answered the heartbeat carrying `ctx`; returns who has acknowledged it. */
  recvAck(from: NodeId, ctx: Uint8Array): Set<NodeId> | undefined {
    const rs = this.pending.get(contextKey(ctx));
    if (!rs) return undefined;
    rs.acks.add(from);
    return rs.acks;
  }

  /** Who has acknowledged the pending read `ctx` (undefined when none is pending under it). */
  acksOf(ctx: Uint8Array): ReadonlySet<NodeId> | undefined {
    return this.pending.get(contextKey(ctx))?.acks;
  }

  /** Releases the read for `ctx` and every read queued before it (their heartbeats went out earlier). */
  advance(ctx: Uint8Array): { req: Message; index: LogIndex }[] {
    const key = contextKey(ctx);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const released = this.queue.splice(0, at + 1);
    const out: { req: Message; index: LogIndex }[] = [];
    for (const k of released) {
      const rs = this.pending.get(k);
      if (!rs) throw new Error(`invariant: read ${k} queued but not pending`);
      this.pending.delete(k);
      out.push({ req: rs.req, index: rs.index });
    }
    return out;
  }

  /** Context of the newest pending read, sent with heartbeats. */
  lastPendingContext(): Uint8Array | undefined {
    const key = this.queue[this.queue.length - 1];
    return key === undefined ? undefined : this.pending.get(key)?.req.context;
  }

  /** Drops every pending read (on a change of leadership they can no longer be confirmed). */
  reset(): void {
    this.pending.clear();
    this.queue.length = 0;
  }

  size(): number {
    return this.queue.length;
  }
}
