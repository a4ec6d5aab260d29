import type { FrameHandler, NodeId, ProtocolId, RequestHandler, Transport } from '@cohort/core';
import { UnavailableError } from '@cohort/core';

/** Connects {@link MemoryTransport}s in one process; frames are delivered on a later macrotask. */
export class MemoryNetwork {
  readonly transports = new Map<NodeId, MemoryTransport>();
  /** Frames sent, for assertions. */
  sent = 0;

  transport(self: NodeId): MemoryTransport {
    const t = new MemoryTransport(self, this);
    this.transports.set(self, t);
    return t;
  }

  /** Delivers a frame unless either end is down. */
  deliver(from: NodeId, to: NodeId, protocol: ProtocolId, frame: Uint8Array): void {
    this.sent += 1;
    const src = this.transports.get(from);
    const dst = this.transports.get(to);
    if (!src?.up || !dst?.up) throw new UnavailableError(`${to} is unreachable`);
    setImmediate(() => {
      if (src.up && dst.up) dst.handlers.get(protocol)?.(from, frame);
    });
  }
}

/** An in-memory {@link Transport}: `up = false` simulates a crashed process. */
export class MemoryTransport implements Transport {
  readonly maxFrameBytes = 1 << 20;
  readonly handlers = new Map<ProtocolId, FrameHandler>();
  readonly peers = new Map<NodeId, string>();
  up = true;

  constructor(
    readonly self: NodeId,
    private readonly net: MemoryNetwork,
  ) {}

  addPeer(peer: NodeId, address: string): void {
    this.peers.set(peer, address);
  }

  removePeer(peer: NodeId): void {
    this.peers.delete(peer);
  }

  async send(peer: NodeId, protocol: ProtocolId, frame: Uint8Array): Promise<void> {
    this.net.deliver(this.self, peer, protocol, frame);
  }

  async request(peer: NodeId): Promise<Uint8Array> {
    throw new UnavailableError(`requests are not used by membership (to ${peer})`);
  }

  handle(protocol: ProtocolId, handler: FrameHandler): void {
    this.handlers.set(protocol, handler);
  }

  handleRequest(_protocol: ProtocolId, _handler: RequestHandler): void {}

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    this.up = false;
  }
}
