/**
 * Embedding @cohort/raft: three RaftHosts in one process replicate a counter. The state machine and the
 * transport are this file's own; the log lives in @cohort/storage's in-memory store (use SqliteNodeStore
 * for a durable one). Run it with `node src/main.ts`: it prints each node's counter after three additions.
 */
import { pathToFileURL } from 'node:url';
import {
  type ConfState,
  type Entry,
  type FrameHandler,
  type NodeId,
  type RequestHandler,
  SeededRandom,
  type SnapshotMeta,
  type Transport,
  emptyConfState,
  systemClock,
} from '@cohort/core';
import { type ApplyOutcome, type DurableStateMachine, RaftHost } from '@cohort/raft';
import { MemoryNodeStore } from '@cohort/storage';

/** The replicated application: a counter; each command is a decimal number to add. */
class Counter implements DurableStateMachine<number> {
  value = 0;
  private at: SnapshotMeta = { index: 0, term: 0, confState: emptyConfState() };
  applied = () => this.at;
  applyBatch(entries: Entry[], confState: ConfState): (ApplyOutcome<number> | undefined)[] {
    return entries.map((e) => {
      this.at = { index: e.index, term: e.term, confState };
      if (e.type !== 'normal' || e.data.length === 0) return undefined; // a no-op or a membership change
      this.value += Number(new TextDecoder().decode(e.data));
      return { ok: true, value: this.value };
    });
  }
  openSnapshot() {
    const chunks = [new TextEncoder().encode(String(this.value))];
    return { meta: this.at, next: () => chunks.shift(), close() {} };
  }
  receiveSnapshot(meta: SnapshotMeta) {
    let value = 0;
    return {
      write: (_seq: number, chunk: Uint8Array) => {
        value = Number(new TextDecoder().decode(chunk));
      },
      commit: () => {
        this.value = value;
        this.at = meta;
      },
      abort() {},
    };
  }
}

/** The network: in-process, each frame delivered on a later turn of the event loop. */
class LocalTransport implements Transport {
  readonly maxFrameBytes = 1 << 20;
  private readonly onFrame = new Map<string, FrameHandler>();
  private readonly onRequest = new Map<string, RequestHandler>();
  readonly self: NodeId;
  private readonly net: Map<NodeId, LocalTransport>;
  constructor(self: NodeId, net: Map<NodeId, LocalTransport>) {
    this.self = self;
    this.net = net;
    net.set(self, this);
  }
  addPeer() {}
  removePeer() {}
  async send(peer: NodeId, protocol: string, frame: Uint8Array) {
    const to = this.net.get(peer);
    if (!to) throw new Error(`${peer} unreachable`);
    setImmediate(() => to.onFrame.get(protocol)?.(this.self, frame.slice()));
  }
  async request(peer: NodeId, protocol: string, frame: Uint8Array) {
    const handler = this.net.get(peer)?.onRequest.get(protocol);
    if (!handler) throw new Error(`${peer} unreachable`);
    return handler(this.self, frame.slice(), {});
  }
  handle = (protocol: string, h: FrameHandler) => void this.onFrame.set(protocol, h);
  handleRequest = (protocol: string, h: RequestHandler) => void this.onRequest.set(protocol, h);
  async start() {}
  async stop() {}
}

/** Starts three nodes, adds 1, 2 and 3 through the leader, and returns each node's counter once all agree. */
export async function runCounter(timeoutMs = 10_000): Promise<Record<NodeId, number>> {
  const ids = ['n1', 'n2', 'n3'];
  const net = new Map<NodeId, LocalTransport>();
  const nodes = ids.map((id, i) => {
    const host = new RaftHost({
      id,
      store: new MemoryNodeStore(),
      transport: new LocalTransport(id, net),
      clock: systemClock,
      random: new SeededRandom(i + 1),
      tickMs: 10,
    });
    const counter = new Counter();
    host.addGroup('counter', counter, ids);
    host.start();
    return { id, host, counter };
  });
  const until = async <T>(what: string, get: () => T | undefined): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (let v = get(); ; v = get()) {
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  try {
    const leader = await until('a leader', () => nodes.find((n) => n.host.isLeader('counter')));
    for (const n of [1, 2, 3]) await leader.host.propose<number>('counter', new TextEncoder().encode(String(n)));
    await until('every replica at 6', () => (nodes.every((n) => n.counter.value === 6) ? true : undefined));
    return Object.fromEntries(nodes.map((n) => [n.id, n.counter.value]));
  } finally {
    for (const n of nodes) n.host.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await runCounter()));
}
