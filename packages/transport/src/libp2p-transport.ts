import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import {
  type AbortOptions,
  CodecError,
  type CohortError,
  type FrameHandler,
  type NodeId,
  type ProtocolId,
  type RequestHandler,
  TimeoutError,
  type Transport,
  UnavailableError,
  decodeForwardResponse,
  encodeForwardResponse,
  errorFromForwardResponse,
  forwardResponseFromError,
} from '@cohort/core';
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { tcp } from '@libp2p/tcp';
import { type LengthPrefixedStream, lpStream } from '@libp2p/utils';
import type { Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { toHostPort, toMultiaddr } from './address.js';
import { FrameSender, type FramedStream } from './frame-sender.js';
import { type StreamMode, decodeHello, encodeHello } from './hello.js';
import {
  type Libp2pTransportOptions,
  type ResolvedOptions,
  type TransportStats,
  emptyStats,
  resolveOptions,
} from './options.js';
import { loadOrCreatePeerKey } from './peer-key.js';
import { REQUEST_ID_BYTES, RequestChannel, splitId, withId } from './request-channel.js';

/** Requests of one stream served at once; more wait in the stream. */
const MAX_IN_FLIGHT_PER_STREAM = 256;

/** How often the same stream refusal is logged as a warning (it is counted every time). */
const WARN_EVERY_MS = 10_000;

/** The multiaddr protocol code of `/p2p/<PeerId>`. */
const P2P_CODE = 421;

/** Streams a protocol may have open at once on one connection (requests use one stream each). */
const MAX_STREAMS_PER_PROTOCOL = 1024;

interface PeerEntry {
  address: Multiaddr;
  /** The libp2p identity first seen for this node; later connections must match it. */
  peerId: PeerId | undefined;
  senders: Map<string, FrameSender>;
  channels: Map<string, RequestChannel>;
  failures: number;
  nextDialAt: number;
}

/**
 * Creates a {@link Transport} over libp2p (TCP + Noise + Yamux) with a
 * persistent identity in `dataDir`. Call `start()` before use.
 */
export function createLibp2pTransport(options: Libp2pTransportOptions): Libp2pTransport {
  return new Libp2pTransport(resolveOptions(options));
}

/** libp2p behind core's Transport: see the package README for framing, identity and limits. */
export class Libp2pTransport implements Transport {
  readonly self: NodeId;
  readonly maxFrameBytes: number;
  private readonly peers = new Map<NodeId, PeerEntry>();
  private readonly frameHandlers = new Map<string, FrameHandler>();
  private readonly requestHandlers = new Map<string, RequestHandler>();
  private readonly registered = new Set<string>();
  /** When each distinct refusal was last logged as a warning. */
  private readonly warned = new Map<string, number>();
  private readonly counters: TransportStats = emptyStats();
  private node: Libp2p | undefined;

  constructor(private readonly options: ResolvedOptions) {
    this.self = options.self;
    this.maxFrameBytes = options.maxFrameBytes;
  }

  /** This node's libp2p PeerId (stable across restarts); available after `start()`. */
  get peerId(): string {
    return this.started().peerId.toString();
  }

  /** The `host:port` addresses actually bound (useful with port 0). */
  listenAddresses(): string[] {
    return this.started()
      .getMultiaddrs()
      .map((a) => toHostPort(a));
  }

  /** How many libp2p connections are open to `peer` (1 once connected: streams share it). */
  connectionCount(peer: NodeId): number {
    const id = this.peers.get(peer)?.peerId;
    return id === undefined ? 0 : this.started().getConnections(id).length;
  }

  /** A snapshot of the counters. */
  stats(): TransportStats {
    return { ...this.counters };
  }

  addPeer(peer: NodeId, address: string): void {
    if (peer === this.self) return;
    const full = toMultiaddr(address, `address of peer ${peer}`);
    const p2p = full.getComponents().find((c) => c.name === 'p2p')?.value;
    // Keep the transport address alone; the pinned PeerId is appended when dialling.
    const ma = p2p === undefined ? full : full.decapsulateCode(P2P_CODE);
    const existing = this.peers.get(peer);
    if (existing?.address.equals(ma)) return;
    if (existing !== undefined) closeAll(existing);
    this.peers.set(peer, {
      address: ma,
      peerId: existing?.peerId,
      senders: new Map(),
      channels: new Map(),
      failures: 0,
      nextDialAt: 0,
    });
    if (p2p !== undefined) this.peers.get(peer)!.peerId = peerIdFromString(p2p);
  }

  removePeer(peer: NodeId): void {
    const entry = this.peers.get(peer);
    if (entry === undefined) return;
    closeAll(entry);
    this.peers.delete(peer);
  }

  send(peer: NodeId, protocol: ProtocolId, frame: Uint8Array, options: AbortOptions = {}): Promise<void> {
    if (frame.byteLength > this.maxFrameBytes) {
      return Promise.reject(this.oversized(frame.byteLength));
    }
    const entry = this.peers.get(peer);
    if (entry === undefined) return Promise.reject(unknownPeer(peer));
    let sender = entry.senders.get(protocol);
    if (sender === undefined) {
      sender = new FrameSender(
        peer,
        protocol,
        this.options.maxQueuedFrames,
        this.options.maxQueuedBytes,
        () => this.openStream(peer, protocol, 'frames'),
        this.counters,
        this.options.logger,
      );
      entry.senders.set(protocol, sender);
    }
    return sender.send(frame, options.signal);
  }

  async request(
    peer: NodeId,
    protocol: ProtocolId,
    frame: Uint8Array,
    options: AbortOptions = {},
  ): Promise<Uint8Array> {
    if (frame.byteLength > this.maxFrameBytes) throw this.oversized(frame.byteLength);
    const entry = this.peers.get(peer);
    if (entry === undefined) throw unknownPeer(peer);
    let channel = entry.channels.get(protocol);
    if (channel === undefined) {
      channel = new RequestChannel(peer, (signal) => this.openStream(peer, protocol, 'request', signal));
      entry.channels.set(protocol, channel);
    }
    const timeout = AbortSignal.timeout(this.options.requestTimeoutMs);
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
    let response: Uint8Array;
    try {
      response = await channel.request(frame, signal);
    } catch (err) {
      if (timeout.aborted) {
        throw new TimeoutError(
          `request to ${peer} on ${protocol} got no response in ${this.options.requestTimeoutMs} ms`,
        );
      }
      if (isCohortError(err)) throw err;
      throw new UnavailableError(`request to ${peer} on ${protocol} failed: ${(err as Error).message}`);
    }
    const res = decodeForwardResponse(response, { maxBytes: this.maxFrameBytes + 64 });
    if (res.ok) return res.result;
    throw errorFromForwardResponse(res);
  }

  handle(protocol: ProtocolId, handler: FrameHandler): void {
    this.frameHandlers.set(protocol, handler);
    this.registerLater(protocol);
  }

  handleRequest(protocol: ProtocolId, handler: RequestHandler): void {
    this.requestHandlers.set(protocol, handler);
    this.registerLater(protocol);
  }

  async start(): Promise<void> {
    if (this.node !== undefined) return;
    const privateKey = await loadOrCreatePeerKey(this.options.dataDir);
    const node = await createLibp2p({
      privateKey,
      addresses: { listen: [toMultiaddr(this.options.listen, 'listen').toString()] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionManager: { inboundConnectionThreshold: 1000 },
      start: false,
    });
    this.node = node;
    await node.start();
    for (const protocol of new Set([...this.frameHandlers.keys(), ...this.requestHandlers.keys()])) {
      await this.register(protocol);
    }
    this.options.logger.info('transport listening', {
      peerId: node.peerId.toString(),
      addresses: this.listenAddresses(),
    });
  }

  async stop(): Promise<void> {
    const node = this.node;
    if (node === undefined) return;
    this.node = undefined;
    this.registered.clear();
    for (const entry of this.peers.values()) closeAll(entry);
    await node.stop();
  }

  private started(): Libp2p {
    if (this.node === undefined) throw new UnavailableError('the transport is not started; call start() first');
    return this.node;
  }

  private registerLater(protocol: string): void {
    this.register(protocol).catch((err: unknown) => {
      this.registered.delete(protocol);
      this.options.logger.error('could not register a protocol handler', { protocol, err: String(err) });
    });
  }

  private async register(protocol: string): Promise<void> {
    const node = this.node;
    if (node === undefined || this.registered.has(protocol)) return;
    this.registered.add(protocol);
    await node.handle(protocol, (stream, connection) => this.onStream(protocol, stream, connection), {
      maxInboundStreams: MAX_STREAMS_PER_PROTOCOL,
      maxOutboundStreams: MAX_STREAMS_PER_PROTOCOL,
    });
  }

  /** Dials `peer` (reusing its connection), opens a stream on `protocol` and writes the hello. */
  private async openStream(
    peer: NodeId,
    protocol: string,
    mode: StreamMode,
    signal: AbortSignal = AbortSignal.timeout(this.options.requestTimeoutMs),
  ): Promise<FramedStream> {
    const node = this.started();
    const entry = this.peers.get(peer);
    if (entry === undefined) throw unknownPeer(peer);
    const now = this.options.clock.now();
    if (now < entry.nextDialAt) {
      throw new UnavailableError(
        `${peer} at ${toHostPort(entry.address)} is unreachable; next dial in ${Math.ceil(entry.nextDialAt - now)} ms`,
      );
    }
    let connection: Connection;
    try {
      const target = entry.peerId === undefined ? entry.address : entry.address.encapsulate(`/p2p/${entry.peerId}`);
      connection = await node.dial(target, { signal });
    } catch (err) {
      this.counters.dialFailures++;
      entry.failures++;
      const wait = Math.min(this.options.maxRedialMs, this.options.minRedialMs * 2 ** (entry.failures - 1));
      entry.nextDialAt = this.options.clock.now() + wait;
      // Warn once when a reachable peer becomes unreachable, not on every retry.
      const log = entry.failures === 1 ? this.options.logger.warn : this.options.logger.debug;
      log.call(this.options.logger, 'cannot reach peer', {
        peer,
        address: toHostPort(entry.address),
        retryInMs: wait,
        err: String(err),
      });
      throw new UnavailableError(
        `cannot reach ${peer} at ${toHostPort(entry.address)} on ${protocol}: ${(err as Error).message}; retrying in ${wait} ms`,
      );
    }
    if (entry.peerId !== undefined && !entry.peerId.equals(connection.remotePeer)) {
      this.counters.rejectedStreams++;
      this.options.logger.warn('peer answered with another identity; refusing it', {
        peer,
        expected: entry.peerId.toString(),
        got: connection.remotePeer.toString(),
      });
      throw new UnavailableError(`${peer} at ${toHostPort(entry.address)} has another identity than before`);
    }
    entry.peerId = connection.remotePeer;
    entry.failures = 0;
    entry.nextDialAt = 0;
    let raw: Stream;
    try {
      raw = await connection.newStream(protocol, { signal, maxOutboundStreams: MAX_STREAMS_PER_PROTOCOL });
    } catch (err) {
      throw new UnavailableError(`${peer} does not serve ${protocol} (${(err as Error).message})`);
    }
    const lp = this.lp(raw);
    try {
      await lp.write(encodeHello({ mode, from: this.self, to: peer }), { signal });
    } catch (err) {
      raw.abort(err instanceof Error ? err : new Error(String(err)));
      throw new UnavailableError(`cannot open a stream to ${peer} on ${protocol}: ${(err as Error).message}`);
    }
    return { raw, lp };
  }

  private lp(stream: Stream): LengthPrefixedStream<Stream> {
    // The byte buffer must hold one whole frame plus the start of the next.
    return lpStream(stream, { maxDataLength: this.maxFrameBytes + 64, maxBufferSize: 2 * this.maxFrameBytes + 1024 });
  }

  private async onStream(protocol: string, stream: Stream, connection: Connection): Promise<void> {
    const lp = this.lp(stream);
    const remote = connection.remotePeer;
    let from: NodeId;
    let mode: StreamMode;
    try {
      const hello = decodeHello(
        (await lp.read({ signal: AbortSignal.timeout(this.options.requestTimeoutMs) })).subarray(),
      );
      from = hello.from;
      mode = hello.mode;
      const refusal = this.checkHello(hello.from, hello.to, remote);
      if (refusal !== undefined) {
        this.counters.rejectedStreams++;
        this.warnOnce(refusal, `refused a stream: ${refusal}`, {
          protocol,
          from: hello.from,
          peerId: remote.toString(),
        });
        stream.abort(new UnavailableError(refusal));
        return;
      }
    } catch (err) {
      this.counters.rejectedStreams++;
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
    const entry = this.peers.get(from);
    if (entry === undefined) return `${from} is not a known peer; add it with addPeer first`;
    if (entry.peerId !== undefined && !entry.peerId.equals(remote)) {
      return `${from} is known with identity ${entry.peerId}, but this stream comes from ${remote}`;
    }
    if (entry.peerId === undefined) entry.peerId = remote;
    return undefined;
  }

  private async readFrames(protocol: string, from: NodeId, lp: LengthPrefixedStream<Stream>): Promise<void> {
    while (true) {
      let frame: Uint8Array;
      try {
        frame = (await lp.read()).subarray();
      } catch (err) {
        this.onReadError(protocol, from, lp, err);
        return;
      }
      const handler = this.frameHandlers.get(protocol);
      if (handler === undefined) {
        this.options.logger.warn('dropped a frame: no handler for its protocol', { protocol, from });
        continue;
      }
      if (frame.byteLength > this.maxFrameBytes) {
        this.onReadError(protocol, from, lp, this.oversized(frame.byteLength), true);
        return;
      }
      this.counters.framesReceived++;
      try {
        handler(from, frame);
      } catch (err) {
        this.options.logger.error('frame handler threw', { protocol, from, err: String(err) });
      }
    }
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
        this.onReadError(protocol, from, lp, this.oversized(frame.byteLength), true);
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
    const signal = AbortSignal.timeout(this.options.requestTimeoutMs);
    const handler = this.requestHandlers.get(protocol);
    let response: Uint8Array;
    try {
      if (handler === undefined) throw new UnavailableError(`${this.self} has no request handler for ${protocol}`);
      const result = await handler(from, frame, { signal });
      if (result.byteLength > this.maxFrameBytes) throw this.oversized(result.byteLength);
      response = encodeForwardResponse({ ok: true, result }, { maxBytes: this.maxFrameBytes + 64 });
    } catch (err) {
      response = encodeForwardResponse(forwardResponseFromError(err));
    }
    try {
      await lp.write(withId(id, response), { signal });
    } catch (err) {
      this.options.logger.debug('could not answer a request', { protocol, from, err: String(err) });
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
    if (name === 'UnexpectedEOFError') return; // the peer closed its end between frames
    const stream = lp.unwrap();
    // A frame over the limit is refused as soon as its length prefix arrives, or when it
    // overflows the read buffer if it arrived in one piece.
    const tooLong = ['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'StreamBufferError'];
    if (oversized || tooLong.includes(name ?? '')) {
      this.counters.oversizedFrames++;
      this.options.logger.error('reset a stream: frame over the size limit', {
        protocol,
        from,
        maxFrameBytes: this.maxFrameBytes,
        err: String(err),
      });
    } else if (err instanceof CodecError) {
      this.warnOnce(`malformed:${from}`, 'reset a stream: malformed frame', { protocol, from, err: String(err) });
    } else if (stream.status === 'open') {
      this.options.logger.debug('stream failed', { protocol, from, err: String(err) });
    }
    stream.abort(err instanceof Error ? err : new Error(String(err)));
  }

  /**
   * A misconfigured peer retries at Raft's heartbeat rate: warn once per
   * distinct reason every {@link WARN_EVERY_MS}, and count every occurrence.
   */
  private warnOnce(key: string, msg: string, fields: Record<string, unknown>): void {
    const now = this.options.clock.now();
    const last = this.warned.get(key);
    if (last !== undefined && now - last < WARN_EVERY_MS) {
      this.options.logger.debug(msg, fields);
      return;
    }
    if (this.warned.size >= 1024) this.warned.clear();
    this.warned.set(key, now);
    this.options.logger.warn(msg, fields);
  }

  private oversized(bytes: number): CodecError {
    return new CodecError(
      `frame of ${bytes} bytes exceeds maxFrameBytes (${this.maxFrameBytes}); split it or raise the limit`,
    );
  }
}

function closeAll(entry: PeerEntry): void {
  for (const s of entry.senders.values()) s.close();
  for (const c of entry.channels.values()) c.close();
  entry.senders.clear();
  entry.channels.clear();
}

function unknownPeer(peer: NodeId): UnavailableError {
  return new UnavailableError(`${peer} is not a known peer; add it with addPeer(id, 'host:port') first`);
}

function isCohortError(err: unknown): err is CohortError {
  return err instanceof Error && typeof (err as Partial<CohortError>).code === 'string' && err.name.endsWith('Error');
}
