import { type ConfState, type Entry, type Message, type NodeId, SeededRandom } from '@cohort/core';
import { MemoryStorage, type RaftOptions, RawNode, type Ready, decodeConfChange } from '../src/index.js';

/** One member of a test network: its engine, its store and what it applied. */
export interface TestNode {
  id: NodeId;
  rn: RawNode;
  storage: MemoryStorage;
  applied: Entry[];
  /** Application data restored from the last snapshot installed (see {@link snapshotOf}). */
  fromSnapshot: string[];
  confState?: ConfState;
  /** Every Ready this node produced, for assertions on ordering. */
  readies: Ready[];
}

export type Filter = (m: Message) => boolean;

/**
 * A synchronous in-memory network of RawNodes (like etcd's test `network`):
 * `stabilize()` processes every Ready and delivers every message until quiet.
 */
export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Returns true to drop a message. */
  drop: Filter = () => false;
  private queue: Message[] = [];
  readonly delivered: Message[] = [];
  private readonly seed: number;

  constructor(
    ids: NodeId[],
    readonly options: Partial<RaftOptions> = {},
    seed = 1,
  ) {
    this.seed = seed;
    for (const id of ids) this.add(id, MemoryStorage.withVoters(ids));
  }

  /** A network whose members start through `RawNode.bootstrap` (membership as committed log entries). */
  static bootstrapped(ids: NodeId[], options: Partial<RaftOptions> = {}, seed = 1): Network {
    const net = new Network([], options, seed);
    for (const id of ids) {
      const storage = new MemoryStorage();
      net.nodes.set(id, {
        id,
        rn: RawNode.bootstrap(net.opts(id), storage, ids),
        storage,
        applied: [],
        fromSnapshot: [],
        readies: [],
      });
    }
    return net;
  }

  /** A network whose nodes start from the given stores (e.g. pre-filled divergent logs). */
  static withStorages(storages: Record<NodeId, MemoryStorage>, options: Partial<RaftOptions> = {}, seed = 1): Network {
    const net = new Network([], options, seed);
    for (const [id, st] of Object.entries(storages)) net.add(id, st);
    return net;
  }

  add(id: NodeId, storage: MemoryStorage, opts: Partial<RaftOptions> = {}): TestNode {
    const n: TestNode = {
      id,
      rn: new RawNode(this.opts(id, opts), storage),
      storage,
      applied: [],
      fromSnapshot: [],
      readies: [],
    };
    this.nodes.set(id, n);
    return n;
  }

  opts(id: NodeId, extra: Partial<RaftOptions> = {}): RaftOptions {
    const idx = [...id].reduce((a, c) => a * 31 + c.charCodeAt(0), this.seed);
    return {
      id,
      electionTick: 10,
      heartbeatTick: 1,
      random: new SeededRandom(idx),
      ...this.options,
      ...extra,
    };
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Handles one Ready of `id` the way a synchronous host does. Returns false if there was none. */
  processReady(id: NodeId, opts: { send?: boolean } = {}): boolean {
    const n = this.node(id);
    if (!n.rn.hasReady()) return false;
    const rd = n.rn.ready();
    n.readies.push(rd);
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      n.confState = rd.snapshot.meta.confState;
      n.fromSnapshot = JSON.parse(text(rd.snapshot.data)) as string[];
      n.applied = [];
    }
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    if (opts.send !== false) this.queue.push(...rd.messages);
    for (const e of rd.committedEntries) {
      n.applied.push(e);
      if (e.type === 'confChange') n.confState = n.rn.applyConfChange(decodeConfChange(e.data));
    }
    n.rn.advance();
    return true;
  }

  /** Delivers queued messages (through the drop filter) and processes Readies until nothing moves. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const id of this.nodes.keys()) if (this.processReady(id)) moved = true;
      const q = this.queue;
      this.queue = [];
      for (const m of q) {
        moved = true;
        if (this.drop(m)) continue;
        const to = this.nodes.get(m.to);
        if (!to) continue;
        this.delivered.push(m);
        to.rn.step(m);
      }
      if (!moved) return;
    }
    throw new Error('network did not stabilize');
  }

  /** Messages produced but not yet delivered. */
  pending(): Message[] {
    return this.queue;
  }

  takePending(): Message[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.node(id).rn.tick();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.rn.tick();
      this.stabilize();
    }
  }

  /** Campaigns `id` and settles the network. */
  elect(id: NodeId): void {
    // Apply pending conf changes first: a node with unapplied ones does not campaign.
    this.stabilize();
    this.node(id).rn.campaign();
    this.stabilize();
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.rn.status().role === 'leader').map((n) => n.id);
  }

  /** Drops every message to or from `id`. */
  isolate(id: NodeId): void {
    this.drop = (m) => m.from === id || m.to === id;
  }

  heal(): void {
    this.drop = () => false;
  }
}

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** The application data a node applied, in order (no-ops and conf changes left out). */
export function appliedData(n: TestNode): string[] {
  return n.fromSnapshot.concat(
    n.applied.filter((e) => e.type === 'normal' && e.data.length > 0).map((e) => text(e.data)),
  );
}

/** The application takes a snapshot at what it applied and compacts the log up to there. */
export function snapshotOf(n: TestNode, compact = true): void {
  const index = n.rn.status().applied;
  const cs = n.confState ?? n.rn.status().confState;
  n.storage.createSnapshot(index, cs, bytes(JSON.stringify(appliedData(n))));
  if (compact) n.storage.compact(index);
}

/** A store holding entries with the given terms (index 1..n), a membership, and a hard state at the last term. */
export function storageWithTerms(voters: NodeId[], terms: number[], commit = 0): MemoryStorage {
  const st = MemoryStorage.withVoters(voters);
  st.append(
    terms.map((term, i) => ({ term, index: i + 1, type: 'normal' as const, data: bytes(`t${term}i${i + 1}`) })),
  );
  st.setHardState({ term: terms[terms.length - 1] ?? 0, vote: '', commit });
  return st;
}

/** Every entry a store holds, as "term:index" strings. */
export function logOf(st: MemoryStorage): string[] {
  const out: string[] = [];
  for (let i = st.firstIndex(); i <= st.lastIndex(); i++) out.push(`${st.term(i)}:${i}`);
  return out;
}
