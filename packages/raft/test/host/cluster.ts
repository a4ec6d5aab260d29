import { type Entry, type LogIndex, MemoryHub, type NodeId, SeededRandom, systemClock } from '@cohort/core';
import { RaftHost, type RaftHostOptions, type StateMachine } from '../../src/index.js';
import { MemoryNodeStore } from './memory-node-store.js';

/** A map from `k=v` entries; apply returns the entry's index. */
export class MapMachine implements StateMachine<LogIndex> {
  readonly map = new Map<string, string>();
  lastApplied = 0;

  apply(entry: Entry): LogIndex {
    const [k, v] = new TextDecoder().decode(entry.data).split('=');
    if (k === undefined || v === undefined) throw new Error(`bad command at ${entry.index}`);
    this.map.set(k, v);
    this.lastApplied = entry.index;
    return entry.index;
  }

  skip(index: LogIndex): void {
    this.lastApplied = index;
  }

  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify([...this.map]));
  }

  restore(data: Uint8Array): void {
    this.map.clear();
    for (const [k, v] of JSON.parse(new TextDecoder().decode(data)) as [string, string][]) this.map.set(k, v);
  }
}

export interface TestNode {
  id: NodeId;
  host: RaftHost;
  store: MemoryNodeStore;
  sms: Map<string, MapMachine>;
}

export const GROUPS = ['p0'];

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

  start(id: NodeId, store: MemoryNodeStore): TestNode {
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
    for (const g of this.groups) {
      const sm = new MapMachine();
      sms.set(g, sm);
      host.addGroup(g, sm, this.ids);
    }
    host.start();
    const node = { id, host, store, sms };
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
