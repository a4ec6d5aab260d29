import {
  type Clock,
  type GroupId,
  type Logger,
  type NodeId,
  SNAPSHOT_CHUNK_BYTES,
  type SnapshotAck,
  type SnapshotMeta,
  SnapshotPacer,
  type TimerHandle,
  type Transport,
  decodeSnapshotAck,
  decodeSnapshotChunk,
  encodeSnapshotAck,
  encodeSnapshotChunk,
} from '@cohort/core';
import type { Ballot, Slot } from '../types.js';

/** Protocol id of snapshot chunk requests between the replicas of a Vertical Paxos group. */
export const VP_SNAPSHOT_PROTOCOL = '/cohort/vpaxos-snapshot/1';

/**
 * Reads a state machine's snapshot chunk by chunk from a consistent view (the
 * same contract as the Raft host's: the KV state machine's `openSnapshot`).
 */
export interface VpSnapshotReader {
  /** The applied position the view is at: every slot up to `meta.index` is in it. */
  readonly meta: SnapshotMeta;
  /** The next chunk of about `maxBytes`, or `undefined` after the last; a promise from a reader on another thread. */
  next(maxBytes: number): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  close(): void;
}

/** Builds a received snapshot aside and switches to it atomically (the KV state machine's `receiveSnapshot`). */
export interface VpSnapshotWriter {
  write(seq: number, chunk: Uint8Array): void;
  commit(): void;
  abort(): void;
}

/** Limits of one snapshot transfer. */
export interface VpSnapshotLimits {
  /** Bytes of state per chunk request, read and encoded in one turn of the event loop. @default 256 KiB, within the transport's frame limit */
  chunkBytes?: number;
  /** Most bytes of state per second one transfer sends (0: unlimited), so catch-up does not starve writes. @default 0 */
  maxBytesPerSec?: number;
  /**
   * The slowest a transfer goes while it backs off for the writes served
   * meanwhile (their latency over 1.15x its level before the transfer, or fewer of them; see
   * `SnapshotPacer`); at or above `maxBytesPerSec` the rate is fixed.
   * @default maxBytesPerSec / 16 (as the Raft host's)
   */
  minBytesPerSec?: number;
  /** A transfer not finished after this long is abandoned (the engine asks again). @default 600000 */
  timeoutMs?: number;
  /** Consecutive failed sends of one chunk before the transfer is abandoned. @default 10 */
  maxRetries?: number;
}

interface Transfer {
  peer: NodeId;
  cancelled: boolean;
  timer: TimerHandle | undefined;
  wake: (() => void) | undefined;
  /** When the chunks sent so far are within the rate (local ms). */
  due: number | undefined;
}

/** The pacer a replica's transfers go by when none is shared with it: its own, over its limits. */
export function vpSnapshotPacer(limits: VpSnapshotLimits): SnapshotPacer {
  const max = limits.maxBytesPerSec ?? 0;
  return new SnapshotPacer({ maxBytesPerSec: max, minBytesPerSec: limits.minBytesPerSec ?? max / 16 });
}

/**
 * The sending side of a replica's snapshot transfers: one transfer per peer,
 * read from a consistent view chunk by chunk, each chunk one request whose
 * answer acknowledges it (only the chunk in flight is in memory). The frames
 * and acknowledgements are core's snapshot chunk codec, as Raft groups use.
 */
export class VpSnapshotSender {
  private readonly transfers = new Map<NodeId, Transfer>();
  private readonly pacer: SnapshotPacer;
  /** Transfers that ended with the peer's install. */
  sent = 0;
  /** Times the pacer cut the rate while pacing this sender's chunks (the writes served meanwhile were slow). */
  paceBackoffs = 0;

  constructor(
    private readonly opts: {
      group: GroupId;
      transport: Transport;
      clock: Clock;
      logger: Logger;
      limits: VpSnapshotLimits;
      /**
       * Adapts the rate to the writes served meanwhile; may be shared with the
       * node's other replicas. @default one over `limits` ({@link vpSnapshotPacer})
       */
      pacer?: SnapshotPacer;
      onDone?: (peer: NodeId, ok: boolean, index: Slot) => void;
    },
  ) {
    this.pacer = opts.pacer ?? vpSnapshotPacer(opts.limits);
  }

  /**
   * Streams the view `open()` returns to `peer`, tagged with `ballot`, unless one to it is under way.
   * A view may open asynchronously (a copy of the state made aside); the transfer counts as under way meanwhile.
   */
  start(peer: NodeId, ballot: Ballot, open: () => VpSnapshotReader | Promise<VpSnapshotReader>): void {
    if (this.transfers.has(peer)) return;
    const failed = (err: unknown): void => {
      this.opts.logger.warn('vpaxos: could not open a snapshot view', {
        group: this.opts.group,
        peer,
        err: String(err),
      });
    };
    let opening: VpSnapshotReader | Promise<VpSnapshotReader>;
    try {
      opening = open();
    } catch (err) {
      failed(err);
      return;
    }
    const t: Transfer = { peer, cancelled: false, timer: undefined, wake: undefined, due: undefined };
    this.transfers.set(peer, t);
    // The pace is set against the writes before the transfer, the copy of the state made first included.
    this.pacer.begin();
    const stream = (reader: VpSnapshotReader): void => {
      if (t.cancelled) {
        this.transfers.delete(peer);
        this.pacer.end();
        reader.close();
        return;
      }
      this.opts.logger.info('vpaxos: streaming a snapshot', {
        group: this.opts.group,
        peer,
        index: reader.meta.index,
        ...this.pacer.logFields(),
      });
      this.run(t, ballot, reader)
        .catch((err: Error) => {
          this.opts.logger.warn('vpaxos: snapshot transfer failed', { group: this.opts.group, peer, err: err.message });
          return false;
        })
        .then((ok) => {
          this.transfers.delete(peer);
          this.pacer.end();
          if (t.timer !== undefined) this.opts.clock.clearTimeout(t.timer);
          const index = reader.meta.index;
          reader.close();
          if (ok) this.sent++;
          if (!t.cancelled) this.opts.onDone?.(peer, ok, index);
        });
    };
    if (!(opening instanceof Promise)) {
      stream(opening);
      return;
    }
    opening.then(stream, (err: unknown) => {
      this.transfers.delete(peer);
      this.pacer.end();
      failed(err);
    });
  }

  /** Abandons every transfer (the replica stops). */
  cancelAll(): void {
    for (const t of this.transfers.values()) {
      t.cancelled = true;
      t.wake?.();
    }
  }

  private async run(t: Transfer, ballot: Ballot, reader: VpSnapshotReader): Promise<boolean> {
    const { clock, transport } = this.opts;
    const l = this.opts.limits;
    const chunkBytes = Math.max(1, Math.min(l.chunkBytes ?? SNAPSHOT_CHUNK_BYTES, transport.maxFrameBytes - 64 * 1024));
    const started = clock.now();
    let deadline = started + (l.timeoutMs ?? 600_000);
    const meta = reader.meta;
    let seq = 0;
    let bytes = 0;
    // A reader on another thread answers with promises; one on this thread is taken as it is.
    let got = reader.next(chunkBytes);
    let cur = (got instanceof Promise ? await got : got) ?? new Uint8Array(0);
    got = reader.next(chunkBytes);
    let nxt = got instanceof Promise ? await got : got;
    let failures = 0;
    for (;;) {
      if (t.cancelled || clock.now() > deadline) return false;
      const frame = encodeSnapshotChunk(
        {
          group: this.opts.group,
          leader: transport.self,
          term: ballot,
          index: meta.index,
          seq,
          data: cur,
          last: nxt === undefined,
          ...(seq === 0 ? { meta } : {}),
        },
        { maxBytes: transport.maxFrameBytes },
      );
      let answer: Uint8Array;
      const sentAt = clock.now();
      try {
        answer = await transport.request(t.peer, VP_SNAPSHOT_PROTOCOL, frame);
      } catch {
        if (++failures > (l.maxRetries ?? 10)) return false;
        await this.sleep(t, Math.min(1000, 50 * 2 ** Math.min(failures - 1, 10)));
        continue;
      }
      if (t.cancelled) return false;
      const ack = decodeSnapshotAck(answer, { maxBytes: transport.maxFrameBytes });
      switch (ack.status) {
        case 'installed':
          this.opts.logger.info('vpaxos: snapshot sent', {
            group: this.opts.group,
            peer: t.peer,
            index: meta.index,
            bytes: bytes + cur.length,
            chunks: seq + 1,
          });
          return true;
        case 'unknownTransfer':
          return false;
        case 'refused':
          this.opts.logger.warn('vpaxos: a replica refused a snapshot', {
            group: this.opts.group,
            peer: t.peer,
            reason: ack.reason,
          });
          return false;
        case 'next':
          if (ack.nextSeq === seq + 1) {
            if (nxt === undefined) return false;
            failures = 0;
            seq++;
            bytes += cur.length;
            // Waiting for the rate is not the transfer being slow: it moves the deadline along.
            deadline += await this.pace(t, sentAt, cur.length);
            cur = nxt;
            if (t.cancelled) return false;
            got = reader.next(chunkBytes);
            nxt = got instanceof Promise ? await got : got;
          } else if (ack.nextSeq !== seq) {
            return false;
          }
          break;
        default: {
          const never: never = ack;
          throw new Error(`unknown snapshot ack ${String(never)}`);
        }
      }
    }
  }

  /** Waits until a chunk of `bytes` sent at `sentAt` is within the pacer's rate; returns the milliseconds waited. */
  private async pace(t: Transfer, sentAt: number, bytes: number): Promise<number> {
    const clock = this.opts.clock;
    const before = this.pacer.backoffs;
    const due = this.pacer.nextDue(t.due, sentAt, bytes, clock.now());
    this.paceBackoffs += this.pacer.backoffs - before;
    if (due === undefined) return 0;
    t.due = due;
    const wait = due - clock.now();
    if (wait <= 0) return 0;
    await this.sleep(t, wait);
    return wait;
  }

  private sleep(t: Transfer, ms: number): Promise<void> {
    return new Promise((resolve) => {
      t.wake = () => {
        if (t.timer !== undefined) this.opts.clock.clearTimeout(t.timer);
        t.timer = undefined;
        t.wake = undefined;
        resolve();
      };
      t.timer = this.opts.clock.setTimeout(() => t.wake?.(), ms);
    });
  }
}

/** What the receiving side needs of its replica. */
export interface VpSnapshotTarget {
  /** The replica's promise: a transfer tagged with a lower ballot is refused. */
  promised(): Ballot;
  /** The state machine's applied slot. */
  applied(): Slot;
  /** Starts writing a snapshot aside (the state stays untouched until commit). */
  receive(meta: SnapshotMeta): VpSnapshotWriter;
  /** The state machine now holds every slot up to `index` (installed, or already there). */
  installed(index: Slot): void;
}

interface Incoming {
  from: NodeId;
  ballot: Ballot;
  index: Slot;
  writer: VpSnapshotWriter;
  nextSeq: number;
  lastChunkAt: number;
}

/**
 * The receiving side: one transfer at a time, chunks written in order into the
 * state machine's writer; each answer names the next chunk expected, so a
 * duplicate or a gap is answered, not written. The last chunk commits the
 * state atomically and the replica is told.
 */
export class VpSnapshotReceiver {
  private incoming: Incoming | undefined;
  /** The last transfer installed: its last chunk resent (the answer was lost) is answered again, as a Raft follower does. */
  private done: { from: NodeId; ballot: Ballot; index: Slot } | undefined;
  /** Snapshots installed since start. */
  installedCount = 0;

  constructor(
    private readonly opts: {
      group: GroupId;
      clock: Clock;
      logger: Logger;
      maxFrameBytes: number;
      /** A transfer with no chunk for this long is replaced by any new one. */
      idleMs: number;
      target: VpSnapshotTarget;
    },
  ) {}

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

  /** Aborts the transfer under way (the replica stops). */
  abort(): void {
    this.incoming?.writer.abort();
    this.incoming = undefined;
  }

  private chunk(from: NodeId, frame: Uint8Array): SnapshotAck {
    const c = decodeSnapshotChunk(frame, { maxBytes: this.opts.maxFrameBytes });
    const target = this.opts.target;
    if (c.group !== this.opts.group) return { status: 'refused', reason: `group ${c.group} is not this replica's` };
    if (c.leader !== from) return { status: 'refused', reason: `chunk from ${from} claims sender ${c.leader}` };
    if (c.term < target.promised()) {
      return { status: 'refused', reason: `stale ballot ${c.term}: this replica promised ${target.promised()}` };
    }
    const fin = this.done;
    if (fin !== undefined && fin.from === from && fin.ballot === c.term && fin.index === c.index) {
      return { status: 'installed' };
    }
    const now = this.opts.clock.now();
    let t = this.incoming;
    const same = t !== undefined && t.from === from && t.ballot === c.term && t.index === c.index;
    if (!same) {
      if (c.seq !== 0 || c.meta === undefined) return { status: 'unknownTransfer' };
      if (t !== undefined && now - t.lastChunkAt < this.opts.idleMs) {
        return { status: 'refused', reason: `a snapshot from ${t.from} is being received` };
      }
      t?.writer.abort();
      this.incoming = undefined;
      if (c.meta.index <= target.applied()) {
        // The machine holds this state already: nothing to write.
        target.installed(c.meta.index);
        return { status: 'installed' };
      }
      t = { from, ballot: c.term, index: c.index, writer: target.receive(c.meta), nextSeq: 0, lastChunkAt: now };
      this.incoming = t;
    }
    const cur = t as Incoming;
    cur.lastChunkAt = now;
    if (c.seq !== cur.nextSeq) return { status: 'next', nextSeq: cur.nextSeq };
    try {
      cur.writer.write(c.seq, c.data);
    } catch (err) {
      cur.writer.abort();
      this.incoming = undefined;
      throw err;
    }
    cur.nextSeq++;
    if (!c.last) return { status: 'next', nextSeq: cur.nextSeq };
    this.incoming = undefined;
    this.done = { from, ballot: cur.ballot, index: cur.index };
    if (cur.index <= target.applied()) {
      // The machine applied past the snapshot meanwhile: keep its newer state.
      cur.writer.abort();
    } else {
      cur.writer.commit();
      this.installedCount++;
      this.opts.logger.info('vpaxos: installed a snapshot', { group: this.opts.group, from, index: cur.index });
    }
    target.installed(cur.index);
    return { status: 'installed' };
  }
}
