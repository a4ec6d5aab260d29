import {
  type ConfState,
  type Entry,
  type GroupWrite,
  type HardState,
  type LogIndex,
  type NodeId,
  ProposalDroppedError,
  type RaftLogReader,
  type SeededRandom,
  type Term,
  emptyConfState,
} from '@cohort/core';
import { type RaftOptions, RawNode, type StateRole, decodeConfChange } from '@cohort/raft';
import { MemoryNodeStore } from '@cohort/storage';
import type { SimNetwork } from '../network.js';
import type { EventHandle, Scheduler } from '../scheduler.js';
import { decodeText, encodeText } from '../text-codec.js';
import type { TraceHash } from '../trace.js';
import type { Coverage } from './coverage.js';
import type { RaftInvariants } from './invariants.js';
import { KvMachine, decodeCommand, encodeCommand } from './kv-machine.js';
import type { ClientRequest, SimMessage } from './messages.js';

/** What a simulated node shares with its cluster. */
export interface NodeEnv {
  scheduler: Scheduler;
  network: SimNetwork<SimMessage>;
  invariants: RaftInvariants;
  coverage: Coverage;
  trace: TraceHash;
  /** Engine options every node gets (id and random are filled per node). */
  raft: Omit<RaftOptions, 'id' | 'random' | 'applied'>;
  /** Take an application snapshot after this many applied entries. */
  snapshotEvery: number;
  /** Entries kept in the log behind a snapshot, for slow followers. */
  snapshotKeep: number;
  /** Deliberate host bugs, to prove the checks catch them. */
  bugs: HostBugs;
  /** Reports that `id` became leader of `term`. */
  onLeader(id: NodeId, term: Term): void;
}

/** Deliberate host bugs; a correct run sets none. Tests enable them to show the checks fail. */
export interface HostBugs {
  /** Serve ReadIndex reads from local state at once, without confirming leadership. @default false */
  staleReads?: boolean;
  /** Apply entries as soon as they are appended, before they commit. @default false */
  applyUncommitted?: boolean;
}

interface PendingRead {
  from: NodeId;
  req: ClientRequest;
  index: LogIndex | undefined;
}

/** A pending write's key: clients are few and small, sequence numbers stay far below 2^32. */
function writeKey(client: number, seq: number): number {
  return client * 0x100000000 + seq;
}

/** The one Raft group each simulated node runs. */
const GROUP = 'p0';

/**
 * A simulated Raft host: one RawNode, its disk and its KV state machine, in
 * the ready loop a real host runs (persist, send, apply, advance). The disk is
 * storage's in-memory store: it keeps every synced write, and a crash loses
 * the rest (a hard state written without sync, an application snapshot not
 * yet synced) along with all volatile state.
 */
export class SimRaftNode {
  rn: RawNode | undefined;
  readonly store: MemoryNodeStore;
  readonly storage: RaftLogReader;
  /** Index of the latest snapshot saved or installed (volatile; reread on restart). */
  private snapIndex: LogIndex = 0;
  /** The hard state as last written (synced or not). */
  private liveHs: HardState = { term: 0, vote: '', commit: 0 };
  /** The hard state as last synced to disk. */
  private durable: HardState = { term: 0, vote: '', commit: 0 };
  private kv = new KvMachine();
  conf: ConfState = emptyConfState();
  applied: LogIndex = 0;
  term: Term = 0;
  role: StateRole = 'follower';
  lead: NodeId = '';
  /** Set when the node was behind and must catch up to this commit index. */
  catchUpTarget: LogIndex = 0;
  installedSnapshot = false;
  private tickTimer: EventHandle | undefined;
  /** Who to answer for each proposed write, by {@link writeKey}. */
  private pendingWrites = new Map<number, NodeId>();
  private pendingReads = new Map<string, PendingRead>();
  private readNonce = 0;
  incarnation = 0;

  constructor(
    readonly id: NodeId,
    private readonly env: NodeEnv,
    private readonly random: SeededRandom,
    /** Simulated milliseconds between this node's ticks (skewed per node). */
    readonly tickMs: number,
  ) {
    this.store = new MemoryNodeStore({ autoSync: false, name: `${id}.mem`, chunkBytes: 4096 });
    this.storage = this.store.group(GROUP);
  }

  get up(): boolean {
    return this.rn !== undefined;
  }

  /** Starts the node: a founding member bootstraps with `peers`, a joining one starts empty. */
  start(peers?: NodeId[]): void {
    const opts = this.options();
    this.rn = peers ? RawNode.bootstrap(opts, this.storage, peers) : new RawNode(opts, this.storage);
    this.attach();
  }

  private options(): RaftOptions {
    return { ...this.env.raft, id: this.id, random: this.random.fork(), applied: this.snapIndex };
  }

  private attach(): void {
    this.env.network.attach(this.id, (from, msg) => this.receive(from, msg));
    this.scheduleTick();
  }

  private scheduleTick(): void {
    this.tickTimer = this.env.scheduler.after(this.tickMs, () => {
      this.rn?.tick();
      this.processReady();
      this.scheduleTick();
    });
  }

  /** Stops the node abruptly: volatile state and unsynced writes are lost. */
  crash(): void {
    if (!this.rn) return;
    this.rn = undefined;
    if (this.tickTimer) this.env.scheduler.cancel(this.tickTimer);
    this.env.network.detach(this.id);
    this.store.crash();
    this.pendingWrites.clear();
    this.pendingReads.clear();
    this.role = 'follower';
    this.lead = '';
  }

  /** Restarts from disk: snapshot, log and the synced hard state. */
  restart(): void {
    if (this.rn) return;
    this.incarnation++;
    const snap = this.storage.snapshot();
    this.kv.restore(snap.data);
    this.conf = snap.meta.confState;
    this.applied = snap.meta.index;
    this.snapIndex = snap.meta.index;
    this.durable = this.storage.initialState().hardState;
    this.liveHs = this.durable;
    this.env.invariants.onRestart(this.id, this.durable, snap.meta.index);
    this.rn = new RawNode(this.options(), this.storage);
    this.term = this.durable.term;
    this.attach();
  }

  /** Leaves the cluster for good (after its removal committed). */
  stop(): void {
    this.crash();
  }

  private receive(from: NodeId, msg: SimMessage): void {
    const rn = this.rn;
    if (!rn) return;
    if (msg.kind === 'raft') {
      this.env.trace.mix4(1, msg.m.term, msg.m.index, msg.m.entries.length);
      rn.step(msg.m);
    } else if (msg.kind === 'req') {
      this.onRequest(from, msg.req);
    }
    this.processReady();
  }

  private reply(to: NodeId, m: SimMessage): void {
    this.env.network.send(this.id, to, m);
  }

  private notLeader(to: NodeId, req: ClientRequest): void {
    this.reply(to, { kind: 'resp', resp: { client: req.client, seq: req.seq, ok: false, leaderHint: this.lead } });
  }

  private onRequest(from: NodeId, req: ClientRequest): void {
    const rn = this.rn as RawNode;
    if (req.input.op === 'get' && req.read === 'readIndex') {
      if (this.env.bugs.staleReads) {
        const output = this.kv.read(req.input.key);
        this.reply(from, { kind: 'resp', resp: { client: req.client, seq: req.seq, ok: true, output } });
        return;
      }
      const ctx = `${this.id}:${this.incarnation}:${this.readNonce++}`;
      try {
        rn.readIndex(encodeText(ctx));
        this.pendingReads.set(ctx, { from, req, index: undefined });
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e;
        this.notLeader(from, req);
      }
      return;
    }
    if (this.role !== 'leader') {
      this.notLeader(from, req);
      return;
    }
    try {
      rn.propose(encodeCommand({ client: req.client, seq: req.seq, input: req.input }));
      this.pendingWrites.set(writeKey(req.client, req.seq), from);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
      this.notLeader(from, req);
    }
  }

  /** The ready loop: persist, send, apply, advance. */
  processReady(): void {
    const rn = this.rn;
    if (!rn) return;
    const inv = this.env.invariants;
    // Allocated only when a leader sends into a dead link (rare).
    let unreachable: Set<NodeId> | undefined;
    while (rn.hasReady()) {
      const rd = rn.ready();
      const write: GroupWrite = { group: GROUP };
      if (rd.snapshot) write.snapshot = rd.snapshot;
      if (rd.entries.length > 0) write.entries = rd.entries;
      if (rd.hardState) write.hardState = rd.hardState;
      // A received snapshot is synced whatever mustSync says: the leader is told it is installed.
      const sync = rd.mustSync || rd.snapshot !== undefined;
      if (rd.snapshot || rd.entries.length > 0 || rd.hardState) this.store.writeSync([write], { sync });
      if (rd.snapshot) {
        const s = rd.snapshot;
        this.snapIndex = s.meta.index;
        inv.onSnapshot(this.id, s.meta.index, s.meta.term);
        this.kv.restore(s.data);
        this.conf = s.meta.confState;
        this.applied = s.meta.index;
        this.installedSnapshot = true;
        this.env.coverage.snapshotInstall++;
      }
      if (rd.entries.length > 0) {
        inv.onAppend(this.id, rd.entries);
        if (this.env.bugs.applyUncommitted) {
          for (const e of rd.entries) if (e.index === this.applied + 1) this.apply(rn, e);
        }
      }
      if (rd.hardState) {
        this.liveHs = rd.hardState;
        this.term = rd.hardState.term;
        inv.onHardState(this.id, rd.hardState);
      }
      if (sync) {
        // A sync makes every earlier write durable too.
        this.durable = this.liveHs;
        inv.onDurable(this.id, this.durable);
      }
      if (rd.softState) {
        this.lead = rd.softState.lead;
        const wasLeader = this.role === 'leader';
        this.role = rd.softState.role;
        if (this.role === 'leader' && !wasLeader) this.env.onLeader(this.id, this.term);
      }
      const net = this.env.network;
      for (const m of rd.messages) {
        net.send(this.id, m.to, { kind: 'raft', m });
        // A transport notices a dead connection: tell the leader so it stops pipelining to that peer.
        if (this.role === 'leader' && (net.isCut(this.id, m.to) || !net.isAttached(m.to))) {
          unreachable ??= new Set();
          unreachable.add(m.to);
        }
      }
      for (const e of rd.committedEntries) {
        // Only the buggy host above has applied ahead; a correct one applies every committed entry.
        if (!this.env.bugs.applyUncommitted || e.index > this.applied) this.apply(rn, e);
      }
      for (const rs of rd.readStates) {
        const p = this.pendingReads.get(decodeText(rs.context));
        if (p) p.index = rs.index;
      }
      rn.advance();
      if (unreachable) {
        for (const id of unreachable) rn.reportUnreachable(id);
        unreachable.clear();
      }
      this.serveReads();
      this.maybeSnapshot();
    }
  }

  private apply(rn: RawNode, e: Entry): void {
    this.env.invariants.onApply(this.id, e);
    this.applied = e.index;
    this.env.trace.mix3(2, e.index, e.term);
    if (e.type === 'confChange') {
      this.conf = rn.applyConfChange(decodeConfChange(e.data));
      this.env.coverage.confChange++;
      if (this.conf.votersOutgoing.length > 0) this.env.coverage.jointConfig++;
    } else if (e.data.length > 0) {
      this.applyCommand(e.data);
    }
  }

  private applyCommand(data: Uint8Array): void {
    const cmd = decodeCommand(data);
    const out = this.kv.apply(cmd);
    const k = writeKey(cmd.client, cmd.seq);
    const to = this.pendingWrites.get(k);
    if (to === undefined) return;
    this.pendingWrites.delete(k);
    if (out !== undefined) {
      this.reply(to, { kind: 'resp', resp: { client: cmd.client, seq: cmd.seq, ok: true, output: out } });
    }
  }

  private serveReads(): void {
    if (this.pendingReads.size === 0) return;
    for (const [ctx, p] of this.pendingReads) {
      if (p.index === undefined || p.index > this.applied) continue;
      this.pendingReads.delete(ctx);
      const input = p.req.input;
      if (input.op !== 'get') continue;
      if (this.env.raft.readOnlyOption === 'leaseBased') this.env.coverage.leaseRead++;
      else this.env.coverage.readIndexServed++;
      this.reply(p.from, {
        kind: 'resp',
        resp: { client: p.req.client, seq: p.req.seq, ok: true, output: this.kv.read(input.key) },
      });
    }
  }

  /** The application snapshots its state now and then and compacts the log behind it. */
  private maybeSnapshot(): void {
    if (this.applied - this.snapIndex < this.env.snapshotEvery) return;
    const meta = { index: this.applied, term: this.storage.term(this.applied), confState: this.conf };
    const compactTo = Math.max(this.storage.firstIndex() - 1, this.applied - this.env.snapshotKeep);
    // Saved without a sync: a crash before the next sync loses it and restarts from the older state.
    this.store.saveSnapshotSync(GROUP, { meta, data: this.kv.snapshot() }, compactTo);
    this.snapIndex = this.applied;
    this.env.invariants.onCompact(this.id, compactTo);
  }

  /** Asks this node (the leader) to hand leadership to `to`. */
  transferTo(to: NodeId): void {
    this.rn?.transferLeadership(to);
    this.processReady();
  }

  /** Proposes a membership change at this node; false if the engine refused it. */
  proposeConfChange(cc: Parameters<RawNode['proposeConfChange']>[0]): boolean {
    if (!this.rn) return false;
    try {
      this.rn.proposeConfChange(cc);
    } catch (e) {
      if (e instanceof ProposalDroppedError) return false;
      throw e;
    }
    this.processReady();
    return true;
  }

  /** The hard state on disk (what a restart would see). */
  durableState(): HardState {
    return { ...this.durable };
  }
}
