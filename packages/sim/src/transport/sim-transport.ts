import {
  type AbortOptions,
  type Clock,
  CodecError,
  type FrameHandler,
  type NodeId,
  type ProtocolId,
  type RequestHandler,
  type TimerHandle,
  type Transport,
  UnavailableError,
} from '@cohort/core';
import type { SimNetwork } from '../network.js';

/** What the simulated network carries between {@link SimTransport}s: the frames of core's Transport, opaque. */
export type SimFrame =
  | { kind: 'frame'; protocol: ProtocolId; bytes: Uint8Array }
  | { kind: 'request'; protocol: ProtocolId; id: number; bytes: Uint8Array }
  | { kind: 'response'; id: number; bytes: Uint8Array }
  | { kind: 'failure'; id: number; message: string };

/** Options of a {@link SimTransport}. */
export interface SimTransportOptions {
  /** Largest frame sent or answered. @default 1048576 */
  maxFrameBytes?: number;
  /** Local milliseconds a request waits for its response before it fails (a lost request or reply). @default 2000 */
  requestTimeoutMs?: number;
  /**
   * Let the network duplicate requests (and replies). A real connection
   * delivers a request at most once, so only a server that deduplicates
   * retried writes (sessions) is expected to survive this.
   * @default false
   */
  duplicateRequests?: boolean;
  /** Called for each frame delivered to this endpoint (the run's trace hash). */
  onDeliver?: (from: NodeId, frame: SimFrame) => void;
}

interface PendingRequest {
  peer: NodeId;
  resolve(bytes: Uint8Array): void;
  reject(err: Error): void;
  timer: TimerHandle;
  cleanup: (() => void) | undefined;
}

/**
 * Allocates request ids unique across a whole run, so a reply meant for a
 * crashed incarnation of a node never answers a request of the next one.
 */
export class RequestIds {
  private last = 0;
  next(): number {
    return ++this.last;
  }
}

/**
 * Core's {@link Transport} over a {@link SimNetwork}: one-way frames and
 * request/response pairs travel as simulated messages, so they meet the
 * network's delay, loss, duplication, reordering and partitions. A request
 * whose request or reply is lost fails after `requestTimeoutMs` of the
 * endpoint's clock. `send` rejects when the link is cut or the peer is down,
 * as a real transport notices a dead connection.
 */
export class SimTransport implements Transport {
  readonly maxFrameBytes: number;
  private readonly handlers = new Map<ProtocolId, FrameHandler>();
  private readonly requestHandlers = new Map<ProtocolId, RequestHandler>();
  private readonly pending = new Map<number, PendingRequest>();
  private readonly timeoutMs: number;
  private readonly onDeliver: ((from: NodeId, frame: SimFrame) => void) | undefined;
  /**
   * One error per unreachable peer, reused: a leader sends to a down peer on
   * every heartbeat, and building an Error (its stack) each time is costly.
   */
  private readonly unreachable = new Map<NodeId, UnavailableError>();
  /** Requests and replies travel once (no duplicates) unless `duplicateRequests`. */
  private readonly once: boolean;
  private alive = true;

  constructor(
    readonly self: NodeId,
    private readonly network: SimNetwork<SimFrame>,
    private readonly clock: Clock,
    private readonly ids: RequestIds,
    options: SimTransportOptions = {},
  ) {
    this.maxFrameBytes = options.maxFrameBytes ?? 1024 * 1024;
    this.timeoutMs = options.requestTimeoutMs ?? 2000;
    this.onDeliver = options.onDeliver;
    this.once = options.duplicateRequests !== true;
    network.attach(self, (from, frame) => this.deliver(from, frame));
  }

  addPeer(): void {}
  removePeer(): void {}

  send(peer: NodeId, protocol: ProtocolId, frame: Uint8Array): Promise<void> {
    if (!this.alive) return Promise.reject(new UnavailableError(`${this.self}: the transport is stopped`));
    if (frame.byteLength > this.maxFrameBytes) return Promise.reject(this.oversized(frame.byteLength));
    if (this.network.isCut(this.self, peer) || !this.network.isAttached(peer)) {
      // The message still counts as sent and blocked, as on a real dead link.
      this.network.send(this.self, peer, { kind: 'frame', protocol, bytes: frame });
      let err = this.unreachable.get(peer);
      if (err === undefined) {
        err = new UnavailableError(`${peer} is unreachable from ${this.self}`);
        this.unreachable.set(peer, err);
      }
      return Promise.reject(err);
    }
    // Copied once: the sender may reuse its buffer; receivers only read.
    this.network.send(this.self, peer, { kind: 'frame', protocol, bytes: frame.slice() });
    return Promise.resolve();
  }

  request(peer: NodeId, protocol: ProtocolId, frame: Uint8Array, options: AbortOptions = {}): Promise<Uint8Array> {
    if (!this.alive) return Promise.reject(new UnavailableError(`${this.self}: the transport is stopped`));
    if (frame.byteLength > this.maxFrameBytes) return Promise.reject(this.oversized(frame.byteLength));
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const id = this.ids.next();
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.settle(id)?.reject(new UnavailableError(`request to ${peer} timed out after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      let cleanup: (() => void) | undefined;
      if (signal) {
        // A run never yields to the real event loop, so a real-time signal cannot fire during one.
        const onAbort = (): void => this.settle(id)?.reject(abortReason(signal));
        signal.addEventListener('abort', onAbort, { once: true });
        cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.pending.set(id, { peer, resolve, reject, timer, cleanup });
      this.network.send(this.self, peer, { kind: 'request', protocol, id, bytes: frame.slice() }, this.once);
    });
  }

  handle(protocol: ProtocolId, handler: FrameHandler): void {
    this.handlers.set(protocol, handler);
  }

  handleRequest(protocol: ProtocolId, handler: RequestHandler): void {
    this.requestHandlers.set(protocol, handler);
  }

  async start(): Promise<void> {}

  /** Detaches from the network; requests still waiting fail. */
  async stop(): Promise<void> {
    this.detach();
    for (const id of [...this.pending.keys()]) {
      this.settle(id)?.reject(new UnavailableError(`${this.self}: the transport is stopped`));
    }
  }

  /** The process died: detached at once, and nothing it was waiting for is ever answered. */
  crash(): void {
    this.detach();
    this.pending.clear();
  }

  private detach(): void {
    if (!this.alive) return;
    this.alive = false;
    this.network.detach(this.self);
  }

  private settle(id: number): PendingRequest | undefined {
    const p = this.pending.get(id);
    if (p === undefined) return undefined;
    this.pending.delete(id);
    this.clock.clearTimeout(p.timer);
    p.cleanup?.();
    return p;
  }

  private deliver(from: NodeId, frame: SimFrame): void {
    if (!this.alive) return;
    this.onDeliver?.(from, frame);
    switch (frame.kind) {
      case 'frame':
        this.handlers.get(frame.protocol)?.(from, frame.bytes);
        return;
      case 'request':
        this.serve(from, frame.protocol, frame.id, frame.bytes);
        return;
      case 'response': {
        // A duplicate or late reply finds nothing waiting.
        const p = this.pending.get(frame.id);
        if (p !== undefined && p.peer === from) this.settle(frame.id)?.resolve(frame.bytes);
        return;
      }
      case 'failure': {
        const p = this.pending.get(frame.id);
        if (p !== undefined && p.peer === from) this.settle(frame.id)?.reject(new UnavailableError(frame.message));
        return;
      }
      default: {
        const never: never = frame;
        throw new Error(`unknown frame ${JSON.stringify(never)}`);
      }
    }
  }

  private serve(from: NodeId, protocol: ProtocolId, id: number, bytes: Uint8Array): void {
    const handler = this.requestHandlers.get(protocol);
    if (handler === undefined) {
      this.reply(from, { kind: 'failure', id, message: `${this.self} serves no ${protocol}` });
      return;
    }
    handler(from, bytes, {}).then(
      (response) => {
        if (!this.alive) return;
        if (response.byteLength > this.maxFrameBytes) {
          this.reply(from, { kind: 'failure', id, message: this.oversized(response.byteLength).message });
          return;
        }
        this.reply(from, { kind: 'response', id, bytes: response.slice() });
      },
      (err: unknown) => {
        if (!this.alive) return;
        this.reply(from, { kind: 'failure', id, message: String((err as Error)?.message ?? err) });
      },
    );
  }

  private reply(to: NodeId, frame: SimFrame): void {
    this.network.send(this.self, to, frame, this.once);
  }

  private oversized(bytes: number): CodecError {
    return new CodecError(`frame of ${bytes} bytes exceeds maxFrameBytes (${this.maxFrameBytes})`);
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
}
