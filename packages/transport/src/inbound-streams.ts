import {
  CodecError,
  type FrameHandler,
  type NodeId,
  type RequestHandler,
  UnavailableError,
  encodeForwardResponse,
  forwardResponseFromError,
} from '@cohort/core';
import type { Connection, PeerId, Stream, StreamMessageEvent } from '@libp2p/interface';
import type { LengthPrefixedStream } from '@libp2p/utils';
import { FrameDecoder } from './frame-decoder.js';
import { OversizedFrameError, framed, oversizedError } from './framing.js';
import { type StreamMode, decodeHello } from './hello.js';
import type { ResolvedOptions, TransportStats } from './options.js';
import { REQUEST_ID_BYTES, splitId, withId } from './request-channel.js';

/** Requests of one stream served at once; more wait in the stream. */
const MAX_IN_FLIGHT_PER_STREAM = 256;

/** How often the same stream refusal is logged as a warning (it is counted every time). */
const WARN_EVERY_MS = 10_000;

/** Thrown out of a frame callback when the sender is no longer a known peer. */
class RemovedPeer extends Error {}

/** What the inbound side knows of a peer: the libp2p identity pinned for its NodeId. */
export interface KnownPeer {
  /** The libp2p identity first seen for this node; later connections must match it. */
  peerId: PeerId | undefined;
}

/** What inbound streams need from the transport. */
export interface InboundContext {
  options: ResolvedOptions;
  counters: TransportStats;
  peer(id: NodeId): KnownPeer | undefined;
  frameHandler(protocol: string): FrameHandler | undefined;
  requestHandler(protocol: string): RequestHandler | undefined;
}

/**
 * The receiving side of the transport: checks each stream's hello, then
 * delivers its one-way frames or serves its requests, resetting only the
 * stream on a bad hello, an oversized or a malformed frame.
 */
export class InboundStreams {
  private readonly self: NodeId;
  private readonly maxFrameBytes: number;
  /** When each distinct refusal was last logged as a warning. */
  private readonly warned = new Map<string, number>();

  constructor(private readonly ctx: InboundContext) {
    this.self = ctx.options.self;
    this.maxFrameBytes = ctx.options.maxFrameBytes;
  }

  /** Serves one inbound stream of `protocol` until it ends. */
  async onStream(protocol: string, stream: Stream, connection: Connection): Promise<void> {
    const lp = framed(stream, this.maxFrameBytes);
    const remote = connection.remotePeer;
    let from: NodeId;
    let mode: StreamMode;
    try {
      const hello = decodeHello(
        (await lp.read({ signal: AbortSignal.timeout(this.ctx.options.requestTimeoutMs) })).subarray(),
      );
      from = hello.from;
      mode = hello.mode;
      const refusal = this.checkHello(hello.from, hello.to, remote);
      if (refusal !== undefined) {
        this.ctx.counters.rejectedStreams++;
        this.warnOnce(refusal, `refused a stream: ${refusal}`, {
          protocol,
          from: hello.from,
          peerId: remote.toString(),
        });
        stream.abort(new UnavailableError(refusal));
        return;
      }
    } catch (err) {
      this.ctx.counters.rejectedStreams++;
      this.warnOnce(`hello:${remote}`, 'refused a stream without a valid hello', {
        protocol,
        peerId: remote.toString(),
        err: String(err),
      });
      stream.abort(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (mode === 'frames') await this.readFrames(protocol, from, lp);
    else await this.answerRequests(protocol, from, lp);
  }

  /** Why a stream from `from` (libp2p identity `remote`) addressed to `to` must be refused, if it must. */
  private checkHello(from: NodeId, to: NodeId, remote: PeerId): string | undefined {
    if (to !== this.self) return `it is addressed to ${to}, but this node is ${this.self}`;
    const entry = this.ctx.peer(from);
    if (entry === undefined) return `${from} is not a known peer; add it with addPeer first`;
    if (entry.peerId !== undefined && !entry.peerId.equals(remote)) {
      return `${from} is known with identity ${entry.peerId}, but this stream comes from ${remote}`;
    }
    if (entry.peerId === undefined) entry.peerId = remote;
    return undefined;
  }

  /**
   * Hands each frame of a frames stream to the protocol's handler as its last
   * byte arrives (see {@link FrameDecoder}); resolves when the stream ends.
   */
  private readFrames(protocol: string, from: NodeId, lp: LengthPrefixedStream<Stream>): Promise<void> {
    const stream = lp.unwrap();
    return new Promise<void>((resolve) => {
      const stop = (): void => {
        stream.removeEventListener('message', onMessage);
        stream.removeEventListener('close', onClose);
        stream.removeEventListener('remoteCloseWrite', onRemoteCloseWrite);
        resolve();
      };
      const decoder = new FrameDecoder(this.maxFrameBytes, (frame) => {
        if (this.ctx.peer(from) === undefined) throw new RemovedPeer();
        const handler = this.ctx.frameHandler(protocol);
        if (handler === undefined) {
          this.ctx.options.logger.warn('dropped a frame: no handler for its protocol', { protocol, from });
          return;
        }
        this.ctx.counters.framesReceived++;
        try {
          handler(from, frame);
        } catch (err) {
          this.ctx.options.logger.error('frame handler threw', { protocol, from, err: String(err) });
        }
      });
      const onMessage = (evt: StreamMessageEvent): void => {
        try {
          decoder.push(evt.data);
        } catch (err) {
          stop();
          if (err instanceof RemovedPeer) this.refuseRemoved(protocol, from, stream);
          else this.onFramesError(protocol, from, stream, err);
        }
      };
      const onClose = (): void => stop();
      const onRemoteCloseWrite = (): void => {
        // The peer closed its end (between frames, or in the middle of one): close ours so the stream is released.
        stop();
        stream.close().catch((e: unknown) => stream.abort(e instanceof Error ? e : new Error(String(e))));
      };
      stream.addEventListener('message', onMessage);
      stream.addEventListener('close', onClose);
      stream.addEventListener('remoteCloseWrite', onRemoteCloseWrite);
      if (stream.status !== 'open') stop();
    });
  }

  /** Resets a frames stream on a frame over the limit or a malformed length. */
  private onFramesError(protocol: string, from: NodeId, stream: Stream, err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    if (e instanceof OversizedFrameError) this.reportOversized(protocol, from, e);
    else this.warnOnce(`malformed:${from}`, 'reset a stream: malformed frame', { protocol, from, err: String(e) });
    stream.abort(e);
  }

  /** Counts and logs a stream reset for a frame over the size limit. */
  private reportOversized(protocol: string, from: NodeId, err: unknown): void {
    this.ctx.counters.oversizedFrames++;
    this.ctx.options.logger.error('reset a stream: frame over the size limit', {
      protocol,
      from,
      maxFrameBytes: this.maxFrameBytes,
      err: String(err),
    });
  }

  /** Serves the requests of one stream, concurrently, answering each under its id. */
  private async answerRequests(protocol: string, from: NodeId, lp: LengthPrefixedStream<Stream>): Promise<void> {
    let inFlight = 0;
    let slotFreed: (() => void) | undefined;
    while (true) {
      // Stop reading while too many requests of this stream are being served:
      // the sender then waits on the stream's flow control instead of piling up work here.
      while (inFlight >= MAX_IN_FLIGHT_PER_STREAM) {
        await new Promise<void>((resolve) => {
          slotFreed = resolve;
        });
      }
      let frame: Uint8Array;
      try {
        frame = (await lp.read()).subarray();
      } catch (err) {
        this.onReadError(protocol, from, lp, err);
        return;
      }
      if (frame.byteLength > this.maxFrameBytes + REQUEST_ID_BYTES) {
        this.onReadError(protocol, from, lp, oversizedError(this.maxFrameBytes, frame.byteLength), true);
        return;
      }
      if (this.ctx.peer(from) === undefined) {
        this.refuseRemoved(protocol, from, lp.unwrap());
        return;
      }
      const split = splitId(frame);
      if (split === undefined) {
        this.onReadError(protocol, from, lp, new CodecError('a request frame without a request id'));
        return;
      }
      inFlight++;
      void this.answer(protocol, from, lp, split.id, split.body).finally(() => {
        inFlight--;
        slotFreed?.();
        slotFreed = undefined;
      });
    }
  }

  private async answer(
    protocol: string,
    from: NodeId,
    lp: LengthPrefixedStream<Stream>,
    id: number,
    frame: Uint8Array,
  ): Promise<void> {
    const signal = AbortSignal.timeout(this.ctx.options.requestTimeoutMs);
    const handler = this.ctx.requestHandler(protocol);
    let response: Uint8Array;
    try {
      if (handler === undefined) throw new UnavailableError(`${this.self} has no request handler for ${protocol}`);
      const result = await handler(from, frame, { signal });
      if (result.byteLength > this.maxFrameBytes) throw oversizedError(this.maxFrameBytes, result.byteLength);
      response = encodeForwardResponse({ ok: true, result }, { maxBytes: this.maxFrameBytes + 64 });
    } catch (err) {
      response = encodeForwardResponse(forwardResponseFromError(err));
    }
    try {
      await lp.write(withId(id, response), { signal });
    } catch (err) {
      this.ctx.options.logger.debug('could not answer a request', { protocol, from, err: String(err) });
    }
  }

  private onReadError(
    protocol: string,
    from: NodeId,
    lp: LengthPrefixedStream<Stream>,
    err: unknown,
    oversized = false,
  ): void {
    const name = (err as Error | undefined)?.name;
    const stream = lp.unwrap();
    if (name === 'UnexpectedEOFError') {
      // The peer closed its end between frames: close ours so the stream is released.
      stream.close().catch((e: unknown) => stream.abort(e instanceof Error ? e : new Error(String(e))));
      return;
    }
    // A frame over the limit is refused as soon as its length prefix arrives, or when it
    // overflows the read buffer if it arrived in one piece.
    const tooLong = ['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'StreamBufferError'];
    if (oversized || tooLong.includes(name ?? '')) {
      this.reportOversized(protocol, from, err);
    } else if (err instanceof CodecError) {
      this.warnOnce(`malformed:${from}`, 'reset a stream: malformed frame', { protocol, from, err: String(err) });
    } else if (stream.status === 'open') {
      this.ctx.options.logger.debug('stream failed', { protocol, from, err: String(err) });
    }
    stream.abort(err instanceof Error ? err : new Error(String(err)));
  }

  /** Resets a stream whose peer was removed while it was open. */
  private refuseRemoved(protocol: string, from: NodeId, stream: Stream): void {
    const reason = `${from} is not a known peer any more`;
    this.ctx.counters.rejectedStreams++;
    this.warnOnce(reason, `refused a stream: ${reason}`, { protocol, from });
    stream.abort(new UnavailableError(reason));
  }

  /**
   * A misconfigured peer retries at Raft's heartbeat rate: warn once per
   * distinct reason every {@link WARN_EVERY_MS}, and count every occurrence.
   */
  private warnOnce(key: string, msg: string, fields: Record<string, unknown>): void {
    const now = this.ctx.options.clock.now();
    const last = this.warned.get(key);
    if (last !== undefined && now - last < WARN_EVERY_MS) {
      this.ctx.options.logger.debug(msg, fields);
      return;
    }
    if (this.warned.size >= 1024) this.warned.clear();
    this.warned.set(key, now);
    this.ctx.options.logger.warn(msg, fields);
  }
}
