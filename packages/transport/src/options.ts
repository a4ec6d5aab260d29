import { type Clock, DEFAULT_MAX_FRAME_BYTES, type Logger, type NodeId, silentLogger, systemClock } from '@cohort/core';

/** Options of {@link createLibp2pTransport}. */
export interface Libp2pTransportOptions {
  /** This node's id; peers must know it under this id. */
  self: NodeId;
  /** Where to listen: `host:port` (port 0 picks a free port) or a TCP multiaddr. */
  listen: string;
  /** The data dir; the peer identity is kept in `<dataDir>/peer-key`. */
  dataDir: string;
  /**
   * The largest frame sent or accepted; a larger incoming frame resets its stream.
   * @default 16 MiB (core's DEFAULT_MAX_FRAME_BYTES)
   */
  maxFrameBytes?: number;
  /**
   * One-way frames queued per peer and protocol before `send` drops new ones.
   * @default 1024
   */
  maxQueuedFrames?: number;
  /**
   * Bytes of one-way frames queued per peer and protocol before `send` drops new ones.
   * @default 64 MiB
   */
  maxQueuedBytes?: number;
  /**
   * How long `request` waits for a response (and a dial for a connection).
   * @default 5000
   */
  requestTimeoutMs?: number;
  /**
   * Wait after the first failed dial of a peer; doubles with each further failure.
   * @default 100
   */
  minRedialMs?: number;
  /**
   * The longest wait between dials of an unreachable peer.
   * @default 5000
   */
  maxRedialMs?: number;
  /**
   * Where warnings about rejected streams and frames go.
   * @default silentLogger
   */
  logger?: Logger;
  /**
   * Time source for redial backoff.
   * @default systemClock
   */
  clock?: Clock;
  /**
   * The cluster secret: a libp2p private-network pre-shared key (see
   * `clusterSecretFromText`). Every connection is then encrypted with it
   * before any handshake, so a process without it cannot open a connection
   * to this node, nor this node to it.
   */
  clusterSecret?: Uint8Array;
  /**
   * A fault-injection hook, for fault tests on real processes only: every
   * outgoing frame and request for which it answers true is lost, as on a
   * cut link (a frame silently, a request with UnavailableError).
   * @default no faults
   */
  faultHook?: FaultHook;
}

/**
 * Decides per message whether it is lost (see {@link Libp2pTransportOptions.faultHook}).
 * Cutting both directions between two nodes partitions them; one direction, a one-way cut.
 */
export interface FaultHook {
  /** Whether a message from this node to `peer` on `protocol` is lost. */
  dropsTo(peer: NodeId, protocol: string): boolean;
}

const NO_FAULTS: FaultHook = { dropsTo: () => false };

export type ResolvedOptions = Required<Omit<Libp2pTransportOptions, 'clusterSecret'>> &
  Pick<Libp2pTransportOptions, 'clusterSecret'>;

export function resolveOptions(o: Libp2pTransportOptions): ResolvedOptions {
  return {
    self: o.self,
    listen: o.listen,
    dataDir: o.dataDir,
    maxFrameBytes: o.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    maxQueuedFrames: o.maxQueuedFrames ?? 1024,
    maxQueuedBytes: o.maxQueuedBytes ?? 64 * 1024 * 1024,
    requestTimeoutMs: o.requestTimeoutMs ?? 5000,
    minRedialMs: o.minRedialMs ?? 100,
    maxRedialMs: o.maxRedialMs ?? 5000,
    logger: o.logger ?? silentLogger,
    clock: o.clock ?? systemClock,
    ...(o.clusterSecret !== undefined ? { clusterSecret: o.clusterSecret } : {}),
    faultHook: o.faultHook ?? NO_FAULTS,
  };
}

/** Counters of a transport since it started. */
export interface TransportStats {
  /** One-way frames handed to a connection. */
  framesSent: number;
  /** One-way frames delivered to a handler. */
  framesReceived: number;
  /** One-way frames dropped because the peer's send queue was full. */
  framesDropped: number;
  /** Streams reset for an oversized frame. */
  oversizedFrames: number;
  /** Streams refused: unknown peer, mismatched identity, or a hello for another node. */
  rejectedStreams: number;
  /** Dials that failed. */
  dialFailures: number;
  /** Peers that gossip named but that were not admitted (see `Libp2pTransport.forGossip`). */
  gossipRefused: number;
  /** Frames and requests lost to the fault hook. */
  faultDrops: number;
}

export function emptyStats(): TransportStats {
  return {
    framesSent: 0,
    framesReceived: 0,
    framesDropped: 0,
    oversizedFrames: 0,
    rejectedStreams: 0,
    dialFailures: 0,
    gossipRefused: 0,
    faultDrops: 0,
  };
}
