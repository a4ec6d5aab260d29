import type { NodeId } from './ids.js';

/** Options every network call accepts. */
export interface AbortOptions {
  signal?: AbortSignal;
}

/** Protocol ids, one per subsystem, versioned. */
export const Protocols = {
  raft: '/cohort/raft/1',
  swim: '/cohort/swim/1',
  kv: '/cohort/kv/1',
  /** Snapshot streaming between the hosts of one group: acknowledged, resumable chunks. */
  snapshot: '/cohort/snapshot/1',
  /** A replica whose state is corrupt asks a healthy one to stream it a snapshot. */
  snapshotPull: '/cohort/snapshot-pull/1',
} as const;
export type ProtocolId = (typeof Protocols)[keyof typeof Protocols] | (string & {});

/** Handles a one-way frame from `from`. Must not throw; errors are the handler's to log. */
export type FrameHandler = (from: NodeId, frame: Uint8Array) => void;

/** Answers a request frame from `from` with a response frame. */
export type RequestHandler = (from: NodeId, frame: Uint8Array, options: AbortOptions) => Promise<Uint8Array>;

/**
 * Message passing between nodes. Frames are opaque bytes (encoded by the
 * caller with core's codec) and bounded by `maxFrameBytes`. Delivery is
 * best-effort: engines above tolerate loss, duplication and reordering.
 */
export interface Transport {
  /** This node's id. */
  readonly self: NodeId;
  /** The largest frame `send`/`request` accept and handlers can receive. */
  readonly maxFrameBytes: number;
  /** Tells the transport where `peer` listens (`host:port`, or a multiaddr). */
  addPeer(peer: NodeId, address: string): void;
  removePeer(peer: NodeId): void;
  /** Sends one frame, best-effort. Resolves once handed to the connection; rejects if undeliverable. */
  send(peer: NodeId, protocol: ProtocolId, frame: Uint8Array, options?: AbortOptions): Promise<void>;
  /** Sends a request and waits for its response. */
  request(peer: NodeId, protocol: ProtocolId, frame: Uint8Array, options?: AbortOptions): Promise<Uint8Array>;
  /** Registers the handler for one-way frames on `protocol` (one per protocol). */
  handle(protocol: ProtocolId, handler: FrameHandler): void;
  /** Registers the handler for requests on `protocol` (one per protocol). */
  handleRequest(protocol: ProtocolId, handler: RequestHandler): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}
