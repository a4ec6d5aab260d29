import { type NodeId, UnavailableError } from '@cohort/core';
import type { FramedStream } from './frame-sender.js';

/** Bytes of the request id that prefixes every request and response frame. */
export const REQUEST_ID_BYTES = 4;

interface Live {
  stream: FramedStream;
  pending: Map<number, { resolve: (frame: Uint8Array) => void; reject: (err: Error) => void }>;
}

/**
 * The requests of one peer and protocol, multiplexed over one long-lived
 * stream: each frame carries a request id, responses may come in any order.
 * Opening a stream costs a protocol negotiation round trip, so reusing one
 * cuts a request's latency several times over (see the README's figures).
 */
export class RequestChannel {
  private live: Live | undefined;
  private opening: Promise<Live> | undefined;
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly peer: NodeId,
    private readonly open: (signal: AbortSignal) => Promise<FramedStream>,
  ) {}

  /** Sends `frame` and resolves with the raw response frame (without its id). */
  async request(frame: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    const live = await this.ensure(signal);
    signal.throwIfAborted();
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
    const response = new Promise<Uint8Array>((resolve, reject) => {
      live.pending.set(id, { resolve, reject });
      signal.addEventListener(
        'abort',
        () => {
          live.pending.delete(id);
          reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
        },
        { once: true },
      );
    });
    // The stream may break (rejecting every waiter) while the write below is still pending: the rejection
    // reaches the caller through `return response`, or is superseded by the write's own error; either way
    // it must not count as unhandled, which would stop the process.
    response.catch(() => {});
    try {
      await live.stream.lp.write(withId(id, frame), { signal });
    } catch (err) {
      live.pending.delete(id);
      throw err;
    }
    return response;
  }

  close(): void {
    this.closed = true;
    const live = this.live;
    this.live = undefined;
    if (live !== undefined) this.fail(live, new UnavailableError(`the transport to ${this.peer} is closed`));
  }

  private async ensure(signal: AbortSignal): Promise<Live> {
    if (this.closed) throw new UnavailableError(`the transport to ${this.peer} is closed`);
    if (this.live !== undefined && this.live.stream.raw.writeStatus === 'writable') return this.live;
    // One open at a time: concurrent requests wait for the same stream.
    this.opening ??= this.open(signal)
      .then((stream) => {
        const live: Live = { stream, pending: new Map() };
        this.live = live;
        void this.readResponses(live);
        return live;
      })
      .finally(() => {
        this.opening = undefined;
      });
    return this.opening;
  }

  private async readResponses(live: Live): Promise<void> {
    try {
      while (true) {
        const split = splitId((await live.stream.lp.read()).subarray());
        if (split === undefined) throw new UnavailableError('response frame without a request id');
        const waiter = live.pending.get(split.id);
        live.pending.delete(split.id);
        waiter?.resolve(split.body);
      }
    } catch (err) {
      if (this.live === live) this.live = undefined;
      live.stream.raw.abort(err instanceof Error ? err : new Error(String(err)));
      this.fail(live, new UnavailableError(`the request stream to ${this.peer} closed: ${(err as Error).message}`));
    }
  }

  private fail(live: Live, err: Error): void {
    live.stream.raw.abort(err);
    for (const waiter of live.pending.values()) waiter.reject(err);
    live.pending.clear();
  }
}

/** Prefixes `frame` with a big-endian u32 request id. */
export function withId(id: number, frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(REQUEST_ID_BYTES + frame.byteLength);
  new DataView(out.buffer).setUint32(0, id);
  out.set(frame, REQUEST_ID_BYTES);
  return out;
}

/** Splits a frame into its request id and body; undefined if too short. */
export function splitId(frame: Uint8Array): { id: number; body: Uint8Array } | undefined {
  if (frame.byteLength < REQUEST_ID_BYTES) return undefined;
  return { id: new DataView(frame.buffer, frame.byteOffset).getUint32(0), body: frame.subarray(REQUEST_ID_BYTES) };
}
