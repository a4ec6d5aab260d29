import {
  type Clock,
  type GroupId,
  type LogIndex,
  type Logger,
  type NodeId,
  type SnapshotAck,
  type SnapshotMeta,
  type Term,
  decodeSnapshotChunk,
  encodeSnapshotAck,
} from '@cohort/core';
import type { DurableStateMachine, SnapshotWriter } from './durable-state-machine.js';

/** What the receiver needs of a hosted group. */
export interface ReceivingGroup {
  machine: DurableStateMachine<unknown>;
  /** The engine's current term. */
  term(): Term;
  /** The machine's applied index as the host knows it. */
  appliedIndex(): LogIndex;
  /** Why a snapshot at `meta` cannot be installed now (it is refused), or undefined. */
  refuses?(meta: SnapshotMeta, from: NodeId): string | undefined;
  /** The machine now holds the snapshot at `meta` (or more): the engine resets its log to it. */
  installed(leader: NodeId, term: Term, meta: SnapshotMeta): void;
}

/** Options of {@link SnapshotReceiver}. */
export interface SnapshotReceiverOptions {
  clock: Clock;
  logger: Logger;
  maxFrameBytes: number;
  /** A transfer with no chunk for this long is dropped and its writer aborted. */
  idleMs: number;
  group(id: GroupId): ReceivingGroup | undefined;
}

interface Incoming {
  leader: NodeId;
  term: Term;
  index: LogIndex;
  meta: SnapshotMeta;
  writer: SnapshotWriter;
  nextSeq: number;
  lastChunkAt: number;
}

const sameTransfer = (a: { leader: NodeId; term: Term; index: LogIndex }, c: typeof a): boolean =>
  a.leader === c.leader && a.term === c.term && a.index === c.index;

/**
 * The follower's side of snapshot streaming: one transfer per group, chunks
 * written in order into the machine's writer (the state stays untouched until
 * commit); each answer names the next chunk expected, so duplicates and gaps
 * are answered, not written. On the last chunk the writer commits and the
 * engine is told, which writes the log's marker and acknowledges the leader.
 */
export class SnapshotReceiver {
  private readonly incoming = new Map<GroupId, Incoming>();
  /** The last transfer installed per group: a resent last chunk (its answer was lost) is answered again. */
  private readonly done = new Map<GroupId, { leader: NodeId; term: Term; index: LogIndex }>();
  /** Snapshots installed since start. */
  installedCount = 0;

  constructor(private readonly opts: SnapshotReceiverOptions) {}

  /** Handles one chunk request; never throws (a bad request gets a refusal). */
  handle(from: NodeId, frame: Uint8Array): Uint8Array {
    let ack: SnapshotAck;
    try {
      ack = this.chunk(from, frame);
    } catch (err) {
      ack = { status: 'refused', reason: (err as Error).message };
    }
    return encodeSnapshotAck(ack);
  }

  /** Drops transfers idle for too long (the leader gave up or lost leadership). */
  expire(now: number): void {
    for (const [group, t] of this.incoming) {
      if (now - t.lastChunkAt < this.opts.idleMs) continue;
      this.opts.logger.warn('abandoned an idle snapshot transfer', { group, leader: t.leader, next: t.nextSeq });
      t.writer.abort();
      this.incoming.delete(group);
    }
  }

  /**
   * Forgets the transfers `group` installed, so the same snapshot is
   * installed again when sent again (the state it left was found corrupt).
   */
  forget(group: GroupId): void {
    this.done.delete(group);
  }

  /** Whether a transfer for `group` is under way. */
  receiving(group: GroupId): boolean {
    return this.incoming.has(group);
  }

  /** Aborts the transfer of `group`, if one is under way (the group is no longer hosted). */
  abort(group: GroupId): void {
    this.incoming.get(group)?.writer.abort();
    this.incoming.delete(group);
  }

  /** Aborts every transfer (the host stops). */
  abortAll(): void {
    for (const t of this.incoming.values()) t.writer.abort();
    this.incoming.clear();
  }

  private chunk(from: NodeId, frame: Uint8Array): SnapshotAck {
    const c = decodeSnapshotChunk(frame, { maxBytes: this.opts.maxFrameBytes });
    if (c.leader !== from) return { status: 'refused', reason: `chunk from ${from} claims leader ${c.leader}` };
    const g = this.opts.group(c.group);
    if (g === undefined) return { status: 'refused', reason: `group ${c.group} is not hosted here` };
    const term = g.term();
    if (c.term < term) return { status: 'refused', reason: `stale term ${c.term}: this replica is at term ${term}` };
    const fin = this.done.get(c.group);
    if (fin && sameTransfer(fin, c)) return { status: 'installed' };
    let t = this.incoming.get(c.group);
    if (t === undefined || !sameTransfer(t, c)) {
      if (c.seq !== 0 || c.meta === undefined) return { status: 'unknownTransfer' };
      if (t) {
        t.writer.abort();
        this.incoming.delete(c.group);
      }
      const refusal = g.refuses?.(c.meta, from);
      if (refusal !== undefined) return { status: 'refused', reason: refusal };
      if (c.meta.index <= g.appliedIndex()) {
        // The machine already holds this state: only the engine's log needs resetting.
        this.finish(c.group, g, { leader: c.leader, term: c.term, index: c.index }, c.meta);
        return { status: 'installed' };
      }
      t = {
        leader: c.leader,
        term: c.term,
        index: c.index,
        meta: c.meta,
        writer: g.machine.receiveSnapshot(c.meta),
        nextSeq: 0,
        lastChunkAt: 0,
      };
      this.incoming.set(c.group, t);
    }
    t.lastChunkAt = this.opts.clock.now();
    // A duplicate (its answer was lost) or a gap: say which chunk comes next.
    if (c.seq !== t.nextSeq) return { status: 'next', nextSeq: t.nextSeq };
    try {
      t.writer.write(c.seq, c.data);
    } catch (err) {
      t.writer.abort();
      this.incoming.delete(c.group);
      throw err;
    }
    t.nextSeq++;
    if (!c.last) return { status: 'next', nextSeq: t.nextSeq };
    this.incoming.delete(c.group);
    if (t.meta.index <= g.appliedIndex()) {
      // The machine applied past the snapshot meanwhile: keep its newer state.
      t.writer.abort();
    } else {
      // Atomic switch: a crash after this and before the engine's marker is repaired at start.
      t.writer.commit();
      this.installedCount++;
    }
    this.finish(c.group, g, t, t.meta);
    return { status: 'installed' };
  }

  private finish(
    group: GroupId,
    g: ReceivingGroup,
    id: { leader: NodeId; term: Term; index: LogIndex },
    meta: SnapshotMeta,
  ): void {
    this.done.set(group, { leader: id.leader, term: id.term, index: id.index });
    this.opts.logger.info('restored a snapshot from the leader: installed a streamed snapshot', {
      group,
      leader: id.leader,
      index: meta.index,
    });
    g.installed(id.leader, id.term, meta);
  }
}
