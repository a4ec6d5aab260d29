import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import {
  type AbortOptions,
  type CohortError,
  type FrameHandler,
  type NodeId,
  type ProtocolId,
  type RequestHandler,
  TimeoutError,
  type Transport,
  UnavailableError,
  decodeForwardResponse,
  errorFromForwardResponse,
} from '@cohort/core';
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import type { Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { toHostPort, toMultiaddr } from './address.js';
import { FrameSender, type FramedStream } from './frame-sender.js';
import { framed, oversizedError } from './framing.js';
import { type StreamMode, encodeHello } from './hello.js';
import { InboundStreams, type KnownPeer } from './inbound-streams.js';
import { noiseCrypto } from './noise-crypto.js';
import {
  type Libp2pTransportOptions,
  type ResolvedOptions,
  type TransportStats,
  emptyStats,
  resolveOptions,
} from './options.js';
import { loadOrCreatePeerKey } from './peer-key.js';
import { RequestChannel } from './request-channel.js';

/** The multiaddr protocol code of `/p2p/<PeerId>`. */
const P2P_CODE = 421;

/** Streams a protocol may have open at once on one connection (requests use one stream each). */
const MAX_STREAMS_PER_PROTOCOL = 1024;

interface PeerEntry extends KnownPeer {
  address: Multiaddr;
  /**
   * The identity that answered the last dial, to reuse its connection. Not a
   * pin: whoever listens at an address may not be the node we meant, and only
   * the node itself (its hello) or the operator (a /p2p/ address) says who it is.
   */
  dialed: PeerId | undefined;
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
  private readonly counters: TransportStats = emptyStats();
  private readonly inbound: InboundStreams;
  private node: Libp2p | undefined;

  constructor(private readonly options: ResolvedOptions) {
    this.self = options.self;
    this.maxFrameBytes = options.maxFrameBytes;
    this.inbound = new InboundStreams({
      options,
      counters: this.counters,
      peer: (id) => this.peers.get(id),
      frameHandler: (protocol) => this.frameHandlers.get(protocol),
      requestHandler: (protocol) => this.requestHandlers.get(protocol),
    });
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
    const entry = this.peers.get(peer);
    const id = entry?.peerId ?? entry?.dialed;
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
      dialed: undefined,
      senders: new Map(),
      channels: new Map(),
      failures: 0,
      nextDialAt: 0,
    });
    if (p2p !== undefined) this.peers.get(peer)!.peerId = peerIdFromString(p2p);
  }

  /**
   * Pins `peer` (added with `addPeer`) to the libp2p identity `peerId`, as the
   * cluster's registry records it: from then on only that identity may speak
   * for `peer`, and connections of another identity that was accepted on first
   * use are closed. Unknown peers are left alone (gossip cannot admit them).
   */
  pinPeer(peer: NodeId, peerId: string): void {
    const entry = this.peers.get(peer);
    if (entry === undefined || peer === this.self) return;
    const pinned = peerIdFromString(peerId);
    if (entry.peerId?.equals(pinned)) return;
    if (entry.peerId !== undefined) {
      this.options.logger.warn(
        'the registry pins another identity than the one accepted first; closing its connections',
        {
          peer,
          accepted: entry.peerId.toString(),
          registered: peerId,
        },
      );
      const node = this.node;
      if (node !== undefined) {
        for (const c of node.getConnections(entry.peerId))
          c.abort(new UnavailableError(`${peer} is pinned to ${peerId}`));
      }
      closeAll(entry);
    }
    entry.peerId = pinned;
    entry.dialed = undefined;
  }

  /**
   * This transport as a gossip protocol (SWIM) should see it: gossip may
   * move a peer this node admitted to a new address, but a node that gossip
   * alone names is not admitted (counted in `gossipRefused`). Peers are
   * admitted by `addPeer` on this transport: the configured members and
   * those a membership change adds.
   */
  forGossip(): Transport {
    return {
      self: this.self,
      maxFrameBytes: this.maxFrameBytes,
      addPeer: (peer, address) => {
        if (peer === this.self) return;
        if (!this.peers.has(peer)) {
          this.counters.gossipRefused++;
          this.options.logger.debug('gossip named a peer that is not admitted; ignored', { peer, address });
          return;
        }
        this.addPeer(peer, address);
      },
      // Gossip that a member left does not remove a peer the node admitted (a restarted node comes back).
      removePeer: () => {},
      send: (peer, protocol, frame, options) => this.send(peer, protocol, frame, options),
      request: (peer, protocol, frame, options) => this.request(peer, protocol, frame, options),
      handle: (protocol, handler) => this.handle(protocol, handler),
      handleRequest: (protocol, handler) => this.handleRequest(protocol, handler),
      start: () => this.start(),
      stop: () => this.stop(),
    };
  }

  removePeer(peer: NodeId): void {
    const entry = this.peers.get(peer);
    if (entry === undefined) return;
    closeAll(entry);
    this.peers.delete(peer);
  }

  send(peer: NodeId, protocol: ProtocolId, frame: Uint8Array, options: AbortOptions = {}): Promise<void> {
    if (frame.byteLength > this.maxFrameBytes) {
      return Promise.reject(oversizedError(this.maxFrameBytes, frame.byteLength));
    }
    const entry = this.peers.get(peer);
    if (entry === undefined) return Promise.reject(unknownPeer(peer));
    if (this.options.faultHook.dropsTo(peer, protocol)) {
      this.counters.faultDrops++;
      return Promise.resolve();
    }
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
    if (frame.byteLength > this.maxFrameBytes) throw oversizedError(this.maxFrameBytes, frame.byteLength);
    const entry = this.peers.get(peer);
    if (entry === undefined) throw unknownPeer(peer);
    if (this.options.faultHook.dropsTo(peer, protocol)) {
      this.counters.faultDrops++;
      throw new UnavailableError(`request to ${peer} on ${protocol} lost: the link is cut (fault hook)`);
    }
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
      connectionEncrypters: [noise({ crypto: noiseCrypto })],
      streamMuxers: [yamux()],
      connectionManager: { inboundConnectionThreshold: 1000 },
      ...(this.options.clusterSecret !== undefined
        ? { connectionProtector: preSharedKey({ psk: this.options.clusterSecret }) }
        : {}),
      start: false,
    });
    this.node = node;
    await node.start();
    for (const protocol of new Set([...this.frameHandlers.keys(), ...this.requestHandlers.keys()])) {
      await this.register(protocol);
    }
    this.options.logger.info('transport listening', {
      peerId: node.peerId.toString(),
      privateNetwork: this.options.clusterSecret !== undefined,
      addresses: this.listenAddresses(),
    });
  }

  async stop(): Promise<void> {
    const node = this.node;
    if (node === undefined) return;
    this.node = undefined;
    this.registered.clear();
    for (const entry of this.peers.values()) closeAll(entry);
    // Peers treat a stop like a crash anyway (they redial with backoff), and a graceful
    // close would wait on long-lived streams the remote end keeps open.
    for (const connection of node.getConnections()) connection.abort(new UnavailableError(`${this.self} is stopping`));
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
    await node.handle(protocol, (stream, connection) => this.inbound.onStream(protocol, stream, connection), {
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
      const known = entry.peerId ?? entry.dialed;
      const target = known === undefined ? entry.address : entry.address.encapsulate(`/p2p/${known}`);
      connection = await node.dial(target, { signal });
    } catch (err) {
      this.counters.dialFailures++;
      entry.failures++;
      // Whoever answered before may be gone for good (a new identity): dial the bare address next.
      entry.dialed = undefined;
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
    entry.dialed = connection.remotePeer;
    entry.failures = 0;
    entry.nextDialAt = 0;
    let raw: Stream;
    try {
      raw = await connection.newStream(protocol, { signal, maxOutboundStreams: MAX_STREAMS_PER_PROTOCOL });
    } catch (err) {
      throw new UnavailableError(`${peer} does not serve ${protocol} (${(err as Error).message})`);
    }
    const lp = framed(raw, this.maxFrameBytes);
    try {
      await lp.write(encodeHello({ mode, from: this.self, to: peer }), { signal });
    } catch (err) {
      raw.abort(err instanceof Error ? err : new Error(String(err)));
      throw new UnavailableError(`cannot open a stream to ${peer} on ${protocol}: ${(err as Error).message}`);
    }
    return { raw, lp };
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
