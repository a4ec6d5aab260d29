import {
  type Clock,
  CorruptStateError,
  type GroupId,
  type Logger,
  type NodeId,
  Protocols,
  type SnapshotChunk,
  SnapshotPacer,
  type Term,
  type TimerHandle,
  type Transport,
  decodeSnapshotAck,
  encodeSnapshotChunk,
} from '@cohort/core';
import type { SnapshotReader } from './durable-state-machine.js';

/** Options of {@link SnapshotSender}. */
export interface SnapshotSenderOptions {
  self: NodeId;
  transport: Transport;
  clock: Clock;
  logger: Logger;
  /** Bytes of state per chunk request. */
  chunkBytes: number;
  /** A transfer that has not finished after this long is abandoned. */
  timeoutMs: number;
  /** The first retry of a failed chunk waits this long; each further one twice as long, up to a second. */
  retryMs: number;
  /** Consecutive failed sends of one chunk before the transfer is abandoned. */
  maxRetries: number;
  /**
   * Most bytes of state per second one transfer sends (0: unlimited). Reading
   * and installing a snapshot costs CPU and disk on both ends; pacing it keeps
   * that from starving the writes the group serves meanwhile.
   * @default 0
   */
  maxBytesPerSec?: number;
  /** Adapts the rate to the writes served meanwhile (see {@link SnapshotPacer}); without it the rate is `maxBytesPerSec`. */
  pacer?: SnapshotPacer;
  /** How a transfer ended: `ok` once the follower installed it; `index`: the snapshot's, when a view was open. */
  onDone(group: GroupId, peer: NodeId, ok: boolean, index?: number): void;
  /** Reading this node's own state met a row failing its checksum: the state must be repaired. */
  onCorrupt?(group: GroupId, err: CorruptStateError): void;
  /** Counts each chunk request sent (retries included). */
  onChunk?(): void;
}

interface Transfer {
  group: GroupId;
  peer: NodeId;
  term: Term;
  /** Undefined while the view opens. */
  reader: SnapshotReader | undefined;
  /** The index the view will be at or after, while it opens. */
  floor: number;
  cancelled: boolean;
  timer: TimerHandle | undefined;
  wake: (() => void) | undefined;
  /** When the next chunk may leave by the pace (the schedule carries over, so timer rounding never adds up to a faster rate). */
  due: number | undefined;
  /** The pacer's back-offs when the transfer began. */
  backoffs: number;
}

/**
 * The leader's side of snapshot streaming: one transfer per (group,
 * follower), reading a consistent view chunk by chunk and sending each as one
 * request whose answer acknowledges it (the flow control). Only the chunk in
 * flight is held in memory; a failed request is retried from it, with the
 * same view, so a lost chunk costs one chunk, not the transfer.
 */
export class SnapshotSender {
  private readonly transfers = new Map<string, Transfer>();
  private readonly pacer: SnapshotPacer;

  constructor(private readonly opts: SnapshotSenderOptions) {
    const max = opts.maxBytesPerSec ?? 0;
    this.pacer = opts.pacer ?? new SnapshotPacer({ maxBytesPerSec: max, minBytesPerSec: max });
  }

  /** Transfers under way. */
  get active(): number {
    return this.transfers.size;
  }

  /**
   * Streams the view `open()` returns to `peer`, unless a transfer to it is
   * already under way (the engine re-emits its snapshot request meanwhile).
   * `floor`: an index the view will be at or after (the applied index now),
   * which {@link sendingIndex} reports while a view that opens asynchronously
   * (a copy of the state made aside) is not open yet.
   */
  start(
    group: GroupId,
    peer: NodeId,
    term: Term,
    open: () => SnapshotReader | Promise<SnapshotReader>,
    floor = 0,
  ): void {
    const key = `${group}\u0000${peer}`;
    if (this.transfers.has(key)) return;
    let opening: SnapshotReader | Promise<SnapshotReader>;
    try {
      opening = open();
    } catch (err) {
      this.openFailed(group, peer, err);
      return;
    }
    const t: Transfer = {
      group,
      peer,
      term,
      reader: undefined,
      floor,
      cancelled: false,
      timer: undefined,
      wake: undefined,
      due: undefined,
      backoffs: this.pacer.backoffs,
    };
    this.transfers.set(key, t);
    // The pace is set against the writes before the transfer, the copy of the state made first included
    // (it costs the writes too, and must not raise the level they are held to).
    this.pacer.begin();
    const stream = (reader: SnapshotReader): void => {
      t.reader = reader;
      if (t.cancelled) {
        this.transfers.delete(key);
        this.pacer.end();
        reader.close();
        return;
      }
      this.opts.logger.info('streaming a snapshot', {
        group,
        peer,
        index: reader.meta.index,
        ...this.pacer.logFields(),
      });
      this.run(t, reader)
        .catch((err: Error) => {
          this.opts.logger.warn('snapshot transfer failed', { group, peer, err: err.message });
          if (err instanceof CorruptStateError) this.opts.onCorrupt?.(group, err);
          return false;
        })
        .then((ok) => {
          this.transfers.delete(key);
          this.pacer.end();
          if (t.timer !== undefined) this.opts.clock.clearTimeout(t.timer);
          reader.close();
          if (!t.cancelled) this.opts.onDone(group, peer, ok, reader.meta.index);
        });
    };
    if (!(opening instanceof Promise)) {
      stream(opening);
      return;
    }
    opening.then(stream, (err: unknown) => {
      this.transfers.delete(key);
      this.pacer.end();
      if (!t.cancelled) this.openFailed(group, peer, err);
    });
  }

  private openFailed(group: GroupId, peer: NodeId, err: unknown): void {
    this.opts.logger.warn('could not open a snapshot view', { group, peer, err: (err as Error).message });
    if (err instanceof CorruptStateError) this.opts.onCorrupt?.(group, err);
    this.opts.onDone(group, peer, false);
  }

  /**
   * The lowest snapshot index a transfer of `group` is sending, if any: the log after it must stay
   * until the follower has it, or it would need another snapshot as soon as this one is installed.
   * A view still opening counts at its floor.
   */
  sendingIndex(group: GroupId): number | undefined {
    let low: number | undefined;
    for (const t of this.transfers.values()) {
      if (t.group !== group) continue;
      const at = t.reader?.meta.index ?? t.floor;
      if (low === undefined || at < low) low = at;
    }
    return low;
  }

  /** Abandons the transfers of `group` (leadership lost), or all of them; their views are closed. */
  cancel(group?: GroupId): void {
    for (const t of this.transfers.values()) {
      if (group !== undefined && t.group !== group) continue;
      t.cancelled = true;
      t.wake?.();
    }
  }

  private async run(t: Transfer, reader: SnapshotReader): Promise<boolean> {
    const { clock, chunkBytes, timeoutMs } = this.opts;
    const started = clock.now();
    // Time spent pacing (see maxBytesPerSec) does not count toward the timeout.
    let deadline = started + timeoutMs;
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
      if (t.cancelled) return false;
      if (clock.now() > deadline) {
        this.opts.logger.warn('snapshot transfer timed out', { group: t.group, peer: t.peer, seq, timeoutMs });
        return false;
      }
      const chunk: SnapshotChunk = {
        group: t.group,
        leader: this.opts.self,
        term: t.term,
        index: meta.index,
        seq,
        data: cur,
        last: nxt === undefined,
      };
      if (seq === 0) chunk.meta = meta;
      const frame = encodeSnapshotChunk(chunk, { maxBytes: this.opts.transport.maxFrameBytes });
      this.opts.onChunk?.();
      let answer: Uint8Array;
      const sentAt = clock.now();
      try {
        answer = await this.opts.transport.request(t.peer, Protocols.snapshot, frame);
      } catch (err) {
        failures++;
        if (failures > this.opts.maxRetries) {
          this.opts.logger.warn('snapshot transfer abandoned: the follower does not answer', {
            group: t.group,
            peer: t.peer,
            seq,
            err: (err as Error).message,
          });
          return false;
        }
        const wait = Math.min(1000, this.opts.retryMs * 2 ** Math.min(failures - 1, 10));
        this.opts.logger.debug('snapshot chunk failed; retrying', {
          peer: t.peer,
          seq,
          wait,
          err: (err as Error).message,
        });
        await this.sleep(t, wait);
        continue;
      }
      if (t.cancelled) return false;
      const ack = decodeSnapshotAck(answer, { maxBytes: this.opts.transport.maxFrameBytes });
      switch (ack.status) {
        case 'installed':
          bytes += cur.length;
          this.opts.logger.info('snapshot sent', {
            group: t.group,
            peer: t.peer,
            index: meta.index,
            bytes,
            chunks: seq + 1,
            ms: Math.round(clock.now() - started),
            ...(this.pacer.adaptive ? { paceBackoffs: this.pacer.backoffs - t.backoffs } : {}),
          });
          return true;
        case 'unknownTransfer':
          // The follower lost the transfer (it restarted): the engine asks for a new one.
          return false;
        case 'refused':
          this.opts.logger.warn('follower refused a snapshot', { group: t.group, peer: t.peer, reason: ack.reason });
          return false;
        case 'next':
          if (ack.nextSeq === seq + 1) {
            if (nxt === undefined) return false; // acknowledged the last chunk without installing: give up
            failures = 0;
            seq++;
            bytes += cur.length;
            const sentBytes = cur.length;
            cur = nxt;
            deadline += await this.pace(t, sentAt, sentBytes);
            if (t.cancelled) return false;
            got = reader.next(chunkBytes);
            nxt = got instanceof Promise ? await got : got;
          } else if (ack.nextSeq !== seq) {
            // Only the chunk in flight is kept: any other answer means the follower lost track.
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
    const due = this.pacer.nextDue(t.due, sentAt, bytes, clock.now());
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
