import type { NodeId } from './ids.js';
import type { FrameHandler, ProtocolId, RequestHandler, Transport } from './transport.js';

/**
 * Connects in-process transports: a {@link Transport} for tests and for
 * embedding several nodes in one process. Frames are copied and delivered on a
 * later turn of the event loop; nodes in `down` are cut off from everyone.
 */
export class MemoryHub {
  readonly nodes = new Map<NodeId, MemoryTransport>();
  /** Nodes cut off from everyone. */
  readonly down = new Set<NodeId>();
  /** Every frame sent, as [from, to, protocol]. */
  readonly sent: [NodeId, NodeId, ProtocolId][] = [];

  transport(id: NodeId): MemoryTransport {
    const t = new MemoryTransport(id, this);
    this.nodes.set(id, t);
    return t;
  }
}

/** One node's end of a {@link MemoryHub}. */
export class MemoryTransport implements Transport {
  readonly maxFrameBytes = 4 * 1024 * 1024;
  readonly handlers = new Map<ProtocolId, FrameHandler>();
  readonly requestHandlers = new Map<ProtocolId, RequestHandler>();
  /** Called before each frame goes out (tests observe ordering against the store). */
  onSend: ((to: NodeId, frame: Uint8Array) => void) | undefined;

  constructor(
    readonly self: NodeId,
    private readonly hub: MemoryHub,
  ) {}

  addPeer(): void {}
  removePeer(): void {}

  async send(peer: NodeId, protocol: ProtocolId, frame: Uint8Array): Promise<void> {
    this.onSend?.(peer, frame);
    this.hub.sent.push([this.self, peer, protocol]);
    const target = this.hub.nodes.get(peer);
    if (!target || this.hub.down.has(peer) || this.hub.down.has(this.self)) throw new Error(`${peer} unreachable`);
    const copy = Uint8Array.from(frame);
    setImmediate(() => {
      if (!this.hub.down.has(peer) && !this.hub.down.has(this.self)) target.handlers.get(protocol)?.(this.self, copy);
    });
  }

  async request(peer: NodeId, protocol: ProtocolId, frame: Uint8Array): Promise<Uint8Array> {
    const target = this.hub.nodes.get(peer);
    const handler = target?.requestHandlers.get(protocol);
    if (!handler || this.hub.down.has(peer) || this.hub.down.has(this.self)) throw new Error(`${peer} unreachable`);
    return handler(this.self, Uint8Array.from(frame), {});
  }

  handle(protocol: ProtocolId, handler: FrameHandler): void {
    this.handlers.set(protocol, handler);
  }

  handleRequest(protocol: ProtocolId, handler: RequestHandler): void {
    this.requestHandlers.set(protocol, handler);
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}
