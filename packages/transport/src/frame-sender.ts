import { CohortError, type Logger, type NodeId, UnavailableError } from '@cohort/core';
import type { Stream } from '@libp2p/interface';
import type { LengthPrefixedStream } from '@libp2p/utils';
import type { TransportStats } from './options.js';

interface Pending {
  frame: Uint8Array;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** A stream and its length-prefixed view. */
export interface FramedStream {
  raw: Stream;
  lp: LengthPrefixedStream<Stream>;
}

/** Opens a long-lived frames stream to the peer (hello already written). */
export type OpenFrameStream = () => Promise<FramedStream>;

/**
 * The outgoing one-way frames of one peer and protocol: a bounded queue
 * drained over one long-lived stream, reopened when it breaks. A full queue
 * drops new frames (Raft and SWIM tolerate loss) rather than buffer without bound.
 */
export class FrameSender {
  private readonly queue: Pending[] = [];
  private queuedBytes = 0;
  private stream: FramedStream | undefined;
  private running = false;
  private closed = false;

  constructor(
    private readonly peer: NodeId,
    private readonly protocol: string,
    private readonly maxQueued: number,
    private readonly maxQueuedBytes: number,
    private readonly open: OpenFrameStream,
    private readonly stats: TransportStats,
    private readonly logger: Logger,
  ) {}

  /** Queues `frame`; an abort of `signal` before it is written takes it back out. */
  send(frame: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new UnavailableError(`the transport to ${this.peer} is closed`));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    // A single frame larger than the byte bound still goes through an empty queue.
    const overBytes = this.queue.length > 0 && this.queuedBytes + frame.byteLength > this.maxQueuedBytes;
    if (this.queue.length >= this.maxQueued || overBytes) {
      this.stats.framesDropped++;
      return Promise.reject(
        new UnavailableError(
          `send queue to ${this.peer} on ${this.protocol} is full (${this.queue.length} frames, ` +
            `${this.queuedBytes} bytes); frame dropped`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = { frame, resolve, reject };
      this.queue.push(pending);
      this.queuedBytes += frame.byteLength;
      signal?.addEventListener(
        'abort',
        () => {
          const at = this.queue.indexOf(pending);
          if (at === -1) return; // already written
          this.queue.splice(at, 1);
          this.queuedBytes -= frame.byteLength;
          reject(abortReason(signal));
        },
        { once: true },
      );
      if (!this.running) void this.drain();
    });
  }

  close(): void {
    this.closed = true;
    const stream = this.stream;
    this.stream = undefined;
    stream?.raw.abort(new UnavailableError('transport closed'));
    this.failAll(new UnavailableError(`the transport to ${this.peer} is closed`));
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        let stream = this.stream;
        if (stream === undefined || stream.raw.writeStatus !== 'writable') {
          try {
            stream = await this.open();
          } catch (err) {
            // Unreachable: fail what is queued now; the next send redials after the backoff.
            this.failAll(asError(err));
            return;
          }
          if (this.closed) {
            stream.raw.abort(new UnavailableError('transport closed'));
            return;
          }
          this.stream = stream;
          const s = stream;
          stream.raw.addEventListener('close', () => {
            if (this.stream === s) this.stream = undefined;
          });
        }
        const batch = this.queue.splice(0, this.queue.length);
        this.queuedBytes = 0;
        try {
          await stream.lp.writeV(batch.map((p) => p.frame));
          this.stats.framesSent += batch.length;
          for (const p of batch) p.resolve();
        } catch (err) {
          if (this.stream === stream) this.stream = undefined;
          this.logger.debug('frame stream broke', { peer: this.peer, protocol: this.protocol, err: String(err) });
          const e = new UnavailableError(`frame stream to ${this.peer} broke: ${asError(err).message}`);
          for (const p of batch) p.reject(e);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private failAll(err: Error): void {
    this.queuedBytes = 0;
    for (const p of this.queue.splice(0, this.queue.length)) p.reject(err);
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
}

function asError(err: unknown): Error {
  if (err instanceof CohortError) return err;
  return err instanceof Error ? err : new Error(String(err));
}
