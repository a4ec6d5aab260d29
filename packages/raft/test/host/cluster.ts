import { type GroupMessage, type NodeId, SeededRandom, decodeRaftFrame, systemClock } from '@cohort/core';
import { MemoryHub } from '@cohort/core/testing';
import { heartbeatMessage, heartbeatResponseMessage } from '../../src/host/heartbeats.js';
import { RaftHost, type RaftHostOptions } from '../../src/index.js';
import { MachineDisk, MapMachine } from './map-machine.js';
import { MemoryNodeStore } from './memory-node-store.js';

export { MachineDisk, MapMachine } from './map-machine.js';

export interface TestNode {
  id: NodeId;
  host: RaftHost;
  store: MemoryNodeStore;
  sms: Map<string, MapMachine>;
  /** The machines' disks, by group: they survive a restart on the same store. */
  disks: Map<string, MachineDisk>;
}

export const GROUPS = ['p0'];

/** The Raft messages a frame from `from` to `to` stands for: a batch's, or coalesced heartbeats expanded (quiesce heartbeats left out). */
export function raftMessages(from: NodeId, to: NodeId, frame: Uint8Array): GroupMessage[] {
  const f = decodeRaftFrame(frame);
  if (f.kind === 'batch') return f.messages;
  const out: GroupMessage[] = [];
  for (const h of f.heartbeats.heartbeats) {
    if (!h.quiesce) out.push({ group: h.group, message: heartbeatMessage(from, to, h) });
  }
  for (const r of f.heartbeats.responses) out.push({ group: r.group, message: heartbeatResponseMessage(from, to, r) });
  return out;
}

/** Three (or more) hosts over in-memory stores and transports with 10 ms ticks. */
export class Cluster {
  readonly hub = new MemoryHub();
  readonly nodes = new Map<NodeId, TestNode>();

  constructor(
    readonly ids: NodeId[],
    readonly groups: string[] = GROUPS,
    readonly options: Partial<RaftHostOptions> = {},
    readonly seed = 1,
    makeStore: () => MemoryNodeStore = () => new MemoryNodeStore(),
  ) {
    for (const id of ids) this.start(id, makeStore());
  }

  /**
   * Starts (or restarts) `id` on `store`; its machines come back from `disks`
   * (what they had synced), or start empty with new disks.
   */
  start(
    id: NodeId,
    store: MemoryNodeStore,
    disks = new Map<string, MachineDisk>(),
    /** The founding voters a new store bootstraps with; [] starts a node that waits to be added. */
    voters: NodeId[] = this.ids,
  ): TestNode {
    const host = new RaftHost({
      id,
      store,
      transport: this.hub.transport(id),
      clock: systemClock,
      random: new SeededRandom(this.seed * 1000 + this.ids.indexOf(id)),
      tickMs: 10,
      electionTicks: 5,
      ...this.options,
    });
    const sms = new Map<string, MapMachine>();
    store.onDurable.length = 0;
    for (const g of this.groups) {
      let disk = disks.get(g);
      if (!disk) {
        disk = new MachineDisk();
        disks.set(g, disk);
      }
      const sm = new MapMachine(disk);
      sms.set(g, sm);
      store.onDurable.push(() => sm.sync());
      host.addGroup(g, sm, voters);
    }
    host.start();
    const node = { id, host, store, sms, disks };
    this.nodes.set(id, node);
    return node;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  leader(group = 'p0', among: NodeId[] = this.ids): NodeId | undefined {
    return among.find((id) => this.nodes.get(id)?.host.isLeader(group) && !this.hub.down.has(id));
  }

  stop(): void {
    for (const n of this.nodes.values()) n.host.stop();
  }
}

/** Polls `cond` until it holds or `ms` pass; throws with `what` on timeout. */
export async function until<T>(what: string, cond: () => T | undefined | false, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const cmd = (s: string): Uint8Array => new TextEncoder().encode(s);
