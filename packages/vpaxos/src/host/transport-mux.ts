import {
  type AbortOptions,
  CodecError,
  type FrameHandler,
  type GroupId,
  type NodeId,
  type ProtocolId,
  type RequestHandler,
  type Transport,
  decodeSnapshotChunk,
  encodeSnapshotAck,
} from '@cohort/core';

/** A replica's handlers on the shared transport. */
interface Slot {
  vp?: FrameHandler;
  master?: FrameHandler;
  snapshot?: RequestHandler;
}
import { type MasterMessage, VP_MASTER_PROTOCOL, VP_PROTOCOL, decodeMasterMessage, peekGroup } from '../codec.js';
import { VP_SNAPSHOT_PROTOCOL } from './snapshot-stream.js';

/** Master-bound messages (`alive`, `complete`) as the configuration master receives them. */
export type MasterInbox = (from: NodeId, group: GroupId, msg: MasterMessage) => void;

/**
 * Shares one transport between the replicas of several Vertical Paxos groups
 * on a node and the configuration master: a transport allows one handler per
 * protocol, so this registers the two Vertical Paxos protocols once and hands
 * each frame to its group's replica (by the group in the frame's header), or,
 * for `alive` and `complete`, to the master. Each replica gets a
 * {@link Transport} of its own from {@link VpTransportMux.forGroup}.
 */
export class VpTransportMux {
  private readonly replicas = new Map<GroupId, Slot>();
  private master: MasterInbox | undefined;
  /** Frames that named no group served here, or could not be read. */
  dropped = 0;

  constructor(private readonly transport: Transport) {
    transport.handle(VP_PROTOCOL, (from, frame) => this.route(from, frame, 'vp'));
    transport.handle(VP_MASTER_PROTOCOL, (from, frame) => this.routeMaster(from, frame));
    transport.handleRequest(VP_SNAPSHOT_PROTOCOL, (from, frame, options) => this.routeSnapshot(from, frame, options));
  }

  /** Where `alive` and `complete` messages go (the configuration master on this node, while it is one). */
  onMasterMessage(inbox: MasterInbox | undefined): void {
    this.master = inbox;
  }

  /** A transport for the replica of `group`: its handlers receive that group's frames only. */
  forGroup(group: GroupId): Transport {
    const t = this.transport;
    const slot: Slot = {};
    this.replicas.set(group, slot);
    return {
      self: t.self,
      maxFrameBytes: t.maxFrameBytes,
      addPeer: (peer: NodeId, address: string) => t.addPeer(peer, address),
      removePeer: (peer: NodeId) => t.removePeer(peer),
      send: (peer: NodeId, protocol: ProtocolId, frame: Uint8Array, options?: AbortOptions) =>
        peer === t.self ? this.deliver(peer, protocol, frame) : t.send(peer, protocol, frame, options),
      request: (peer: NodeId, protocol: ProtocolId, frame: Uint8Array, options?: AbortOptions) =>
        t.request(peer, protocol, frame, options),
      handle: (protocol: ProtocolId, handler: FrameHandler) => {
        if (protocol === VP_PROTOCOL) slot.vp = handler;
        else if (protocol === VP_MASTER_PROTOCOL) slot.master = handler;
        else throw new RangeError(`a Vertical Paxos replica's transport carries no ${protocol}`);
      },
      handleRequest: (protocol: ProtocolId, handler: RequestHandler) => {
        if (protocol === VP_SNAPSHOT_PROTOCOL) slot.snapshot = handler;
        else throw new RangeError(`a Vertical Paxos replica's transport serves no ${protocol} requests`);
      },
      start: () => Promise.resolve(),
      stop: () => Promise.resolve(),
    };
  }

  /**
   * Hands `frame` to this node's own replica or master, as if it had come
   * from `from` (a transport does not send to its own node), on a later turn.
   */
  deliver(from: NodeId, protocol: ProtocolId, frame: Uint8Array): Promise<void> {
    return Promise.resolve().then(() => {
      if (protocol === VP_PROTOCOL) this.route(from, frame, 'vp');
      else if (protocol === VP_MASTER_PROTOCOL) this.routeMaster(from, frame);
    });
  }

  /** Stops routing `group`'s frames (its replica stopped). */
  release(group: GroupId): void {
    this.replicas.delete(group);
  }

  private route(from: NodeId, frame: Uint8Array, kind: 'vp' | 'master'): void {
    let group: GroupId;
    try {
      group = peekGroup(frame);
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      this.dropped++;
      return;
    }
    const handler = this.replicas.get(group)?.[kind];
    if (handler === undefined) {
      this.dropped++;
      return;
    }
    void handler(from, frame);
  }

  /** A snapshot chunk goes to its group's replica (the group is in the chunk). */
  private routeSnapshot(from: NodeId, frame: Uint8Array, options: AbortOptions): Promise<Uint8Array> {
    let group: GroupId;
    try {
      group = decodeSnapshotChunk(frame, { maxBytes: this.transport.maxFrameBytes }).group;
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      this.dropped++;
      return Promise.resolve(encodeSnapshotAck({ status: 'refused', reason: e.message }));
    }
    const handler = this.replicas.get(group)?.snapshot;
    if (handler === undefined) {
      this.dropped++;
      return Promise.resolve(encodeSnapshotAck({ status: 'refused', reason: `group ${group} is not served here` }));
    }
    return handler(from, frame, options);
  }

  private routeMaster(from: NodeId, frame: Uint8Array): void {
    let decoded: ReturnType<typeof decodeMasterMessage>;
    try {
      decoded = decodeMasterMessage(frame);
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      this.dropped++;
      return;
    }
    const { type } = decoded.msg;
    if (type === 'alive' || type === 'complete') {
      if (this.master === undefined) this.dropped++;
      else this.master(from, decoded.group, decoded.msg);
      return;
    }
    this.route(from, frame, 'master');
  }
}
