import {
  type Clock,
  type Entry,
  type GroupId,
  type GroupMessage,
  type GroupWrite,
  type HardState,
  type LogIndex,
  type Logger,
  type NodeId,
  type NodeStore,
  NotLeaderError,
  ProposalDroppedError,
  Protocols,
  type Random,
  type ReplicatedGroup,
  type SnapshotMeta,
  StorageError,
  type Term,
  type TimerHandle,
  type Transport,
  UnavailableError,
  decodeRaftBatch,
  encodeRaftBatch,
  silentLogger,
} from '@cohort/core';
import { decodeConfChange } from '../confchange/codec.js';
import { newMessage } from '../message.js';
import type { Ready, StateRole } from '../types.js';
import type { DurableStateMachine } from './durable-state-machine.js';
import type { EngineFactory, RaftEngine } from './engine.js';
import { startGroup } from './group-startup.js';
import { PendingWork } from './pending.js';
import { rawNodeFactory } from './raw-node-engine.js';
import { type ReceivingGroup, SnapshotReceiver } from './snapshot-receiver.js';
import { SnapshotSender } from './snapshot-sender.js';

const EMPTY = new Uint8Array(0);
const MIB = 1024 * 1024;

/**
 * Deliberate misbehaviour, for tests only: the simulator turns one on to
 * prove its checks catch a host that breaks linearizability or safety.
 * Never set in production.
 */
export interface HostFaults {
  /** `read()` resolves at once, without a ReadIndex round (stale reads become possible). @default false */
  readsWithoutReadIndex?: boolean;
  /** Entries are applied as soon as they are appended, before they commit. @default false */
  applyBeforeCommit?: boolean;
}

/** Options of {@link RaftHost}. */
export interface RaftHostOptions {
  id: NodeId;
  store: NodeStore;
  transport: Transport;
  clock: Clock;
  random: Random;
  /** Builds each group's engine. @default rawNodeFactory (RawNode) */
  createEngine?: EngineFactory;
  logger?: Logger;
  /** Milliseconds per engine tick (the heartbeat interval). @default 100 */
  tickMs?: number;
  /** Ticks without a leader before an election, at least; the engine randomizes in [electionTicks, electionTicksMax]. @default 5 */
  electionTicks?: number;
  /** The longest election timeout in ticks. @default 2 * electionTicks - 1 */
  electionTicksMax?: number;
  /** Ticks between heartbeats. @default 1 */
  heartbeatTicks?: number;
  /** How long a proposal or read may wait before it fails with TimeoutError. @default 5000 */
  requestTimeoutMs?: number;
  /** Durably applied entries past the last snapshot marker that trigger a new marker and compaction. @default 10000 */
  snapshotEntries?: number;
  /**
   * Bytes of log past the last marker that trigger a new marker and compaction (needs a store
   * reporting `stats`, as the storage package's do; the store's own policy also triggers).
   * @default 104857600 (100 MiB)
   */
  snapshotBytes?: number;
  /**
   * Bytes the log may hold before proposals are refused with ProposalDroppedError (needs a store
   * reporting `stats`); the store's own `admitProposal` bound applies as well.
   * @default undefined (the store's bound only)
   */
  maxLogBytes?: number;
  /** Entries kept in the log behind a marker, so slow followers catch up without a snapshot. @default min(1000, snapshotEntries / 2) */
  compactionMarginEntries?: number;
  /** Bytes of state per snapshot chunk request (kept under the transport's frame limit). @default 1 MiB */
  snapshotChunkBytes?: number;
  /** A snapshot transfer not finished after this long is abandoned (the engine asks again later). @default 600000 (10 min) */
  snapshotTimeoutMs?: number;
  /** First wait before resending a failed snapshot chunk; doubles up to a second. @default 50 */
  snapshotRetryMs?: number;
  /** Test-only misbehaviour; see {@link HostFaults}. @default {} */
  faults?: HostFaults;
}

/** What {@link RaftHost.status} reports for one group. */
export interface GroupStatus {
  group: GroupId;
  role: StateRole;
  term: number;
  /** The known leader; '' when none. */
  leader: NodeId;
  commit: LogIndex;
  applied: LogIndex;
  /** First index still in the log (entries before it are in the snapshot). */
  firstIndex: LogIndex;
  lastIndex: LogIndex;
}

/**
 * What a store may add to core's NodeStore to size the log (the storage
 * package's stores do): the host then snapshots when the store's policy says
 * so and refuses proposals while the log is over its byte bound.
 */
interface SizedStore {
  stats(group: GroupId): { shouldSnapshot: boolean; bytes?: number; bytesSinceSnapshot?: number };
  admitProposal(group: GroupId, bytes: number): void;
}

function sizedStore(store: NodeStore): SizedStore | undefined {
  const s = store as Partial<SizedStore>;
  return typeof s.stats === 'function' && typeof s.admitProposal === 'function' ? (s as SizedStore) : undefined;
}

/** Counters of a host since it started, for metrics. */
export interface HostStats {
  /** Ready rounds processed (each one store write at most). */
  rounds: number;
  /** `store.write` calls. */
  storeWrites: number;
  /** Milliseconds spent in `store.write` (durable writes, fsync included). */
  storeWriteMs: number;
  /** Entries persisted. */
  entriesPersisted: number;
  /** Entries applied to state machines. */
  entriesApplied: number;
  /** Raft messages handed to the transport. */
  messagesSent: number;
  /** Frames the transport refused or failed to deliver. */
  sendFailures: number;
  /** Raft frames received and stepped. */
  framesReceived: number;
  /** Snapshot markers saved locally (each followed by log compaction). */
  snapshotsTaken: number;
  /** Snapshots installed from a leader's stream. */
  snapshotsRestored: number;
  /** Snapshot transfers this node finished as leader. */
  snapshotsSent: number;
  /** Snapshot chunk requests sent (retries included). */
  snapshotChunksSent: number;
}

interface Group {
  id: GroupId;
  engine: RaftEngine;
  sm: DurableStateMachine<unknown>;
  pending: PendingWork<unknown>;
  /** The machine's applied position (index, term, membership after it). */
  applied: SnapshotMeta;
  /** The applied position as of the start of the last completed store write: durable. Compaction stops there. */
  durable: SnapshotMeta;
  /** Index of the log's latest snapshot marker. */
  snapshotIndex: LogIndex;
  role: StateRole;
  lead: NodeId;
  /** A hard state whose only change is the commit index, not yet written. */
  deferredHardState?: HardState | undefined;
  /** Reads waiting for the next ReadIndex round. */
  readBatch: string[];
  /** Reads of each round in flight, by the round's context. */
  readRounds: Map<string, string[]>;
}

/**
 * Drives Raft engines, one per group, against a durable NodeStore, a
 * Transport and a Clock. Each round persists the work of every group in one
 * `store.write` (group commit) before any message of the round leaves, then
 * sends, applies committed entries and advances.
 */
export class RaftHost {
  private readonly groups = new Map<GroupId, Group>();
  private readonly log: Logger;
  private readonly tickMs: number;
  private readonly requestTimeoutMs: number;
  private readonly snapshotEntries: number;
  private readonly snapshotBytes: number;
  private readonly margin: number;
  private readonly faults: HostFaults;
  private readonly sender: SnapshotSender;
  private readonly receiver: SnapshotReceiver;
  private readonly sized: SizedStore | undefined;
  private tickTimer: TimerHandle | undefined;
  private scheduled = false;
  private running = false;
  /** A round is under way (its store write may be in flight). */
  private busy = false;
  /** Work arrived while a round was under way: run another. */
  private again = false;
  private readCounter = 0;
  private readonly counters: HostStats = {
    rounds: 0,
    storeWrites: 0,
    storeWriteMs: 0,
    entriesPersisted: 0,
    entriesApplied: 0,
    messagesSent: 0,
    sendFailures: 0,
    framesReceived: 0,
    snapshotsTaken: 0,
    snapshotsRestored: 0,
    snapshotsSent: 0,
    snapshotChunksSent: 0,
  };
  /** Called once the host stopped because its store failed (after logging it). */
  onFatal: ((err: Error) => void) | undefined;
  /** Called when a group's leader or role changes. */
  onLeaderChange: ((group: GroupId, leader: NodeId, role: StateRole) => void) | undefined;

  constructor(private readonly opts: RaftHostOptions) {
    this.log = (opts.logger ?? silentLogger).child({ node: opts.id });
    this.tickMs = opts.tickMs ?? 100;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    this.snapshotEntries = opts.snapshotEntries ?? 10_000;
    this.snapshotBytes = opts.snapshotBytes ?? 100 * MIB;
    this.sized = sizedStore(opts.store);
    this.margin = opts.compactionMarginEntries ?? Math.min(1000, Math.floor(this.snapshotEntries / 2));
    this.faults = opts.faults ?? {};
    const maxFrame = opts.transport.maxFrameBytes;
    this.sender = new SnapshotSender({
      self: opts.id,
      transport: opts.transport,
      clock: opts.clock,
      logger: this.log,
      // Room for the envelope and the chunk's header within one frame.
      chunkBytes: Math.max(1, Math.min(opts.snapshotChunkBytes ?? MIB, maxFrame - 64 * 1024)),
      timeoutMs: opts.snapshotTimeoutMs ?? 600_000,
      retryMs: opts.snapshotRetryMs ?? 50,
      onDone: (group, peer, ok) => this.snapshotSent(group, peer, ok),
      onChunk: () => {
        this.counters.snapshotChunksSent++;
      },
    });
    this.receiver = new SnapshotReceiver({
      clock: opts.clock,
      logger: this.log,
      maxFrameBytes: maxFrame,
      idleMs: Math.max(10 * this.tickMs * (opts.electionTicks ?? 5), 30_000),
      group: (id) => this.receivingGroup(id),
    });
  }

  /**
   * Adds a group driven by the durable state machine `sm`. A group with an
   * empty store is bootstrapped with `voters` (every founding member passes
   * the same list; an empty list starts a member that waits to be added); a
   * stored group resumes from the machine's own applied index, with no
   * replay, and ignores `voters`. Throws StorageError when the log and the
   * machine cannot be reconciled (see {@link startGroup}).
   */
  addGroup(group: GroupId, sm: DurableStateMachine<unknown>, voters: NodeId[]): void {
    if (this.groups.has(group)) throw new Error(`group ${group} is already hosted`);
    const start = startGroup(this.opts.store, group, sm);
    const reader = start.reader;
    const fresh = reader.lastIndex() === 0 && reader.initialState().hardState.term === 0;
    const engine = (this.opts.createEngine ?? rawNodeFactory)(
      {
        id: this.opts.id,
        electionTick: this.opts.electionTicks ?? 5,
        ...(this.opts.electionTicksMax !== undefined ? { electionTickMax: this.opts.electionTicksMax } : {}),
        heartbeatTick: this.opts.heartbeatTicks ?? 1,
        random: this.opts.random,
        applied: start.applied.index,
      },
      reader,
      fresh && voters.length > 0 ? [...voters].sort() : undefined,
    );
    const s = engine.status();
    this.groups.set(group, {
      id: group,
      engine,
      sm,
      pending: new PendingWork(),
      applied: start.applied,
      // What the machine reports may not be fsynced yet; the marker is.
      durable: start.snapshot,
      snapshotIndex: start.snapshot.index,
      role: s.role,
      lead: s.lead,
      readBatch: [],
      readRounds: new Map(),
    });
    this.log.info('group added', {
      group,
      fresh,
      voters: s.confState.voters,
      applied: start.applied.index,
      restoredLegacy: start.restoredLegacy,
      repaired: start.repaired,
    });
    this.schedule();
  }

  /** Registers the Raft protocol handler and starts ticking. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.opts.transport.handle(Protocols.raft, (from, frame) => this.receive(from, frame));
    this.opts.transport.handleRequest(Protocols.snapshot, async (from, frame) => this.receiver.handle(from, frame));
    this.tickTimer = this.opts.clock.setTimeout(() => this.onTick(), this.tickMs);
  }

  /** Stops ticking and fails whatever still waits. The store is the caller's to close. */
  stop(): void {
    this.running = false;
    if (this.tickTimer !== undefined) this.opts.clock.clearTimeout(this.tickTimer);
    this.flushDeferred();
    this.sender.cancel();
    this.receiver.abortAll();
    for (const g of this.groups.values()) g.pending.failAll(new UnavailableError('the node is shutting down'));
  }

  /** A copy of the counters. */
  stats(): HostStats {
    return { ...this.counters };
  }

  /** `group` as a {@link ReplicatedGroup}: what the KV service and other users of a group depend on. */
  replicated(group: GroupId): ReplicatedGroup {
    this.groupOf(group);
    return {
      id: group,
      propose: <R>(data: Uint8Array) => this.propose<R>(group, data),
      read: () => this.readIndex(group),
      status: () => this.status(group),
    };
  }

  /** Whether this node leads `group`. */
  isLeader(group: GroupId): boolean {
    return this.groupOf(group).engine.status().role === 'leader';
  }

  status(group: GroupId): GroupStatus {
    const g = this.groupOf(group);
    const s = g.engine.status();
    const reader = this.opts.store.group(group);
    return {
      group,
      role: s.role,
      term: s.term,
      leader: s.lead,
      commit: s.commit,
      applied: g.applied.index,
      firstIndex: reader.firstIndex(),
      lastIndex: reader.lastIndex(),
    };
  }

  /**
   * Proposes `data` to `group`; resolves with the state machine's result once
   * the entry is applied here. Rejects with NotLeaderError (with the leader
   * when known), ProposalDroppedError or TimeoutError.
   */
  propose<R>(group: GroupId, data: Uint8Array): Promise<R> {
    const g = this.groupOf(group);
    // The engine's live state, not the last Ready's: a follower names the leader as soon as it knows it.
    const s = g.engine.status();
    if (s.role !== 'leader') return Promise.reject(new NotLeaderError(s.lead || undefined));
    let at: { index: LogIndex; term: number };
    try {
      this.admit(group, data.length);
      at = g.engine.propose(data);
    } catch (err) {
      return Promise.reject(err);
    }
    this.schedule();
    return g.pending.addProposal(at.index, at.term, this.opts.clock.now() + this.requestTimeoutMs) as Promise<R>;
  }

  private admit(group: GroupId, bytes: number): void {
    if (this.sized === undefined) return;
    this.sized.admitProposal(group, bytes);
    const max = this.opts.maxLogBytes;
    if (max === undefined) return;
    const held = this.sized.stats(group).bytes ?? 0;
    if (held + bytes > max) {
      throw new ProposalDroppedError(
        `group ${group}: the log holds ${held} bytes, over maxLogBytes (${max}); retry once compaction catches up, or raise maxLogBytes`,
      );
    }
  }

  /**
   * Resolves once this node may serve a linearizable read of `group`: the
   * leader confirmed its leadership with a quorum (ReadIndex, §6.4) and has
   * applied up to the read index.
   */
  readIndex(group: GroupId): Promise<void> {
    const g = this.groupOf(group);
    const s = g.engine.status();
    if (s.role !== 'leader') return Promise.reject(new NotLeaderError(s.lead || undefined));
    // Test-only fault: serve at once, as a leader that lost its leadership unknowingly would.
    if (this.faults.readsWithoutReadIndex) return Promise.resolve();
    const ctx = `${this.opts.id}/${++this.readCounter}`;
    const done = g.pending.addRead(ctx, this.opts.clock.now() + this.requestTimeoutMs);
    // Reads arriving in the same turn share one ReadIndex round (started in processReady): every one
    // of them began before the round did, so its confirmed index is recent enough for all.
    g.readBatch.push(ctx);
    this.schedule();
    return done;
  }

  /** Starts an election for `group` on this node now. */
  campaign(group: GroupId): void {
    this.groupOf(group).engine.campaign();
    this.schedule();
  }

  private groupOf(group: GroupId): Group {
    const g = this.groups.get(group);
    if (g === undefined) throw new UnavailableError(`group ${group} is not hosted on node ${this.opts.id}`);
    return g;
  }

  private onTick(): void {
    if (!this.running) return;
    const now = this.opts.clock.now();
    for (const g of this.groups.values()) {
      g.engine.tick();
      g.pending.expire(now);
    }
    this.receiver.expire(now);
    // Commit indexes reach the disk within a tick even when nothing else is written.
    this.flushDeferred();
    this.processReady();
    this.tickTimer = this.opts.clock.setTimeout(() => this.onTick(), this.tickMs);
  }

  private receive(from: NodeId, frame: Uint8Array): void {
    if (!this.running) return;
    let batch: GroupMessage[];
    try {
      batch = decodeRaftBatch(frame, { maxBytes: this.opts.transport.maxFrameBytes });
    } catch (err) {
      this.log.warn('dropped an undecodable raft frame', { from, err: (err as Error).message });
      return;
    }
    this.counters.framesReceived++;
    for (const { group, message } of batch) {
      const g = this.groups.get(group);
      if (g === undefined) {
        this.log.debug('raft message for a group not hosted here', { from, group });
        continue;
      }
      if (message.from !== from) {
        this.log.warn('raft message claims another sender; dropped', { from, claimed: message.from, group });
        continue;
      }
      if (message.type === 'snap') {
        // Snapshots travel on their own stream (Protocols.snapshot); an image inside a Raft message
        // would reset the log without the state that goes with it.
        this.log.warn('raft snap message dropped: snapshots are streamed', { from, group });
        continue;
      }
      try {
        g.engine.step(message);
      } catch (err) {
        // A corrupt log met while answering (an append read back from disk): never serve from it.
        if (err instanceof StorageError) {
          this.fatal('reading the log', err);
          return;
        }
        this.log.warn('engine refused a message', { from, group, type: message.type, err: (err as Error).message });
      }
    }
    this.schedule();
  }

  /** Coalesces the work of everything that happens in one turn of the event loop into one round. */
  private schedule(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    this.opts.clock.defer(() => {
      this.scheduled = false;
      if (this.running) this.processReady();
    });
  }

  /** Writes the deferred commit indexes of `groups` (all by default) in one store write. */
  private flushDeferred(groups: Iterable<Group> = this.groups.values()): void {
    const batch: GroupWrite[] = [];
    for (const g of groups) {
      if (g.deferredHardState === undefined) continue;
      batch.push({ group: g.id, hardState: g.deferredHardState });
      g.deferredHardState = undefined;
    }
    if (batch.length === 0) return;
    // The store queues writes in order; a commit index needs no durability before anything is sent.
    this.durableWrite(batch).catch((err: Error) => this.fatal('writing commit indexes', err));
  }

  /**
   * `store.write`, noting what it makes durable: the machines' apply transactions are not fsynced,
   * so everything applied before a durable write starts is durable once it completes.
   */
  private async durableWrite(batch: GroupWrite[]): Promise<void> {
    const marks: [Group, SnapshotMeta][] = [];
    for (const g of this.groups.values()) marks.push([g, g.applied]);
    this.counters.storeWrites++;
    await this.opts.store.write(batch);
    for (const [g, at] of marks) if (at.index > g.durable.index) g.durable = at;
  }

  /** A durable write failed: nothing this node would say next can be trusted, so it stops loudly. */
  private fatal(what: string, err: Error): void {
    if (!this.running) return;
    this.log.error('storage failed; the Raft host stops', { what, err: err.message });
    this.stop();
    this.onFatal?.(err);
  }

  /** Starts one ReadIndex round per group for the reads queued since the last one. */
  private startReadRounds(): void {
    for (const g of this.groups.values()) {
      if (g.readBatch.length === 0) continue;
      const reads = g.readBatch;
      g.readBatch = [];
      const round = `${this.opts.id}/r${++this.readCounter}`;
      try {
        g.engine.readIndex(new TextEncoder().encode(round));
        g.readRounds.set(round, reads);
      } catch (err) {
        for (const ctx of reads) g.pending.failRead(ctx, err as Error);
      }
    }
  }

  /**
   * Runs rounds until no group has work: persist all groups (one write,
   * awaited), send, apply, advance. One round at a time: work that arrives
   * while a write is in flight waits for the next round.
   */
  private processReady(): void {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    this.rounds()
      .catch((err: Error) => this.fatal('processing a Ready round', err))
      .finally(() => {
        this.busy = false;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
  }

  private async rounds(): Promise<void> {
    this.startReadRounds();
    for (let rounds = 0; rounds < 16 && this.running; rounds++) {
      const work: { g: Group; rd: Ready }[] = [];
      const batch: GroupWrite[] = [];
      for (const g of this.groups.values()) {
        if (!g.engine.hasReady()) continue;
        const rd = g.engine.ready();
        work.push({ g, rd });
        const w: GroupWrite = { group: g.id };
        if (rd.entries.length > 0) w.entries = rd.entries;
        if (rd.snapshot) w.snapshot = rd.snapshot;
        if (rd.mustSync || w.entries || w.snapshot) {
          const hs = rd.hardState ?? g.deferredHardState;
          if (hs) w.hardState = hs;
          g.deferredHardState = undefined;
        } else if (rd.hardState) {
          // Only the commit index moved: Raft needs no durable commit, so it rides the next write.
          g.deferredHardState = rd.hardState;
        }
        if (w.hardState || w.entries || w.snapshot) batch.push(w);
      }
      if (work.length === 0) return;
      this.counters.rounds++;
      // Durable before any message of this round leaves (Raft §5: persist before responding).
      if (batch.length > 0) {
        const t = this.opts.clock.now();
        await this.durableWrite(batch);
        this.counters.storeWriteMs += this.opts.clock.now() - t;
        for (const w of batch) this.counters.entriesPersisted += w.entries?.length ?? 0;
        if (!this.running) return;
      }
      this.send(work.flatMap(({ g, rd }) => rd.messages.map((message) => ({ group: g.id, message }))));
      for (const { g, rd } of work) {
        this.applyReady(g, rd);
        g.engine.advance();
      }
      for (const { g } of work) await this.maybeCompact(g);
      this.startReadRounds();
    }
    // Still busy: yield to I/O and continue on the next turn.
    this.again = true;
  }

  private send(messages: GroupMessage[]): void {
    const byPeer = new Map<NodeId, GroupMessage[]>();
    for (const gm of messages) {
      if (gm.message.type === 'snap') {
        // The engine asks for a snapshot: the host streams the machine's state instead of the message.
        this.streamSnapshot(gm.group, gm.message.to, gm.message.term);
        continue;
      }
      const list = byPeer.get(gm.message.to);
      if (list) list.push(gm);
      else byPeer.set(gm.message.to, [gm]);
    }
    for (const [peer, list] of byPeer) {
      // One frame per peer per round; a round too large for one frame goes message by message.
      const frames = this.frames(list);
      this.counters.messagesSent += list.length;
      for (const frame of frames) {
        this.opts.transport.send(peer, Protocols.raft, frame).catch((err: Error) => {
          this.counters.sendFailures++;
          this.log.debug('raft send failed', { peer, err: err.message });
          for (const { group } of list) this.groups.get(group)?.engine.reportUnreachable(peer);
        });
      }
    }
  }

  private frames(list: GroupMessage[]): Uint8Array[] {
    const maxBytes = this.opts.transport.maxFrameBytes;
    try {
      return [encodeRaftBatch(list, { maxBytes })];
    } catch {
      const out: Uint8Array[] = [];
      for (const gm of list) {
        try {
          out.push(encodeRaftBatch([gm], { maxBytes }));
        } catch (err) {
          this.log.error('raft message larger than a frame; dropped', {
            to: gm.message.to,
            type: gm.message.type,
            err: (err as Error).message,
          });
        }
      }
      return out;
    }
  }

  private applyReady(g: Group, rd: Ready): void {
    if (rd.softState && (rd.softState.lead !== g.lead || rd.softState.role !== g.role)) {
      const wasLeader = g.role === 'leader';
      g.lead = rd.softState.lead;
      g.role = rd.softState.role;
      this.log.info('leadership changed', { group: g.id, role: g.role, leader: g.lead });
      if (wasLeader && g.role !== 'leader') {
        g.readRounds.clear();
        g.pending.failReads(new NotLeaderError(g.lead || undefined));
        this.sender.cancel(g.id);
      }
      this.onLeaderChange?.(g.id, g.lead, g.role);
    }
    if (rd.snapshot) {
      // Only a streamed snapshot the machine already committed reaches the engine (see SnapshotReceiver).
      const at = g.sm.applied();
      if (at.index < rd.snapshot.meta.index) {
        throw new Error(
          `invariant: group ${g.id} installed a snapshot at ${rd.snapshot.meta.index} but its machine is at ${at.index}`,
        );
      }
      if (at.index > g.applied.index) g.applied = at;
      g.snapshotIndex = Math.max(g.snapshotIndex, rd.snapshot.meta.index);
    }
    let ents = rd.committedEntries;
    if (this.faults.applyBeforeCommit) ents = [...ents, ...rd.entries];
    this.applyEntries(g, ents);
    for (const rs of rd.readStates) {
      const round = new TextDecoder().decode(rs.context);
      for (const ctx of g.readRounds.get(round) ?? []) g.pending.readConfirmed(ctx, rs.index);
      g.readRounds.delete(round);
    }
    g.pending.releaseReads(g.applied.index);
  }

  /**
   * Applies entries past the machine's applied index in one `applyBatch`
   * (re-delivered ones are skipped, so a restart is idempotent); membership
   * changes go to the engine first, in order, and the machine records the
   * resulting membership with its applied index.
   */
  private applyEntries(g: Group, all: Entry[]): void {
    const ents: Entry[] = [];
    let next = g.applied.index + 1;
    for (const e of all) {
      if (e.index !== next) continue;
      ents.push(e);
      next++;
    }
    const last = ents[ents.length - 1];
    if (last === undefined) return;
    let confState = g.applied.confState;
    let changed = false;
    for (const e of ents) {
      if (e.type !== 'confChange') continue;
      confState = g.engine.applyConfChange(decodeConfChange(e.data));
      changed = true;
    }
    if (!changed && g.applied.confState.voters.length === 0) confState = g.engine.status().confState;
    const outcomes = g.sm.applyBatch(ents, confState);
    g.applied = { index: last.index, term: last.term, confState };
    this.counters.entriesApplied += ents.length;
    ents.forEach((e, i) => {
      const out = outcomes[i];
      if (out === undefined) g.pending.applied(e.index, e.term, undefined);
      else if (out.ok) g.pending.applied(e.index, e.term, out.value);
      else {
        // A command every replica rejects alike (bad bytes) fails its proposer; the log moves on.
        this.log.warn('entry failed to apply', { group: g.id, index: e.index, err: out.error.message });
        g.pending.failed(e.index, out.error);
      }
    });
  }

  /**
   * When `snapshotEntries` entries were durably applied since the last
   * marker, or the log's bytes (the store's policy, or `snapshotBytes`) ask
   * for it, saves a metadata-only snapshot marker at the durable applied
   * position and compacts the log behind it: no state is serialized, and the
   * log is never compacted past what the machine holds durably.
   */
  private async maybeCompact(g: Group): Promise<void> {
    const at = g.durable;
    if (at.index <= g.snapshotIndex) return;
    const since = at.index - g.snapshotIndex;
    let due = since >= this.snapshotEntries;
    if (!due && this.sized !== undefined && since >= Math.ceil(this.snapshotEntries / 10)) {
      // The store counts entries not yet applied too: its trigger waits for a tenth of the interval
      // to be applied, so a busy log is not compacted on every round.
      const st = this.sized.stats(g.id);
      due = st.shouldSnapshot || (st.bytesSinceSnapshot ?? 0) >= this.snapshotBytes;
    }
    if (!due) return;
    // A marker never gets ahead of the stored commit index.
    this.flushDeferred([g]);
    const reader = this.opts.store.group(g.id);
    const compactTo = Math.max(at.index - this.margin, reader.firstIndex() - 1);
    await this.opts.store.saveSnapshot(g.id, { meta: at, data: EMPTY }, compactTo);
    g.snapshotIndex = at.index;
    this.counters.snapshotsTaken++;
    this.log.info('log compacted behind a snapshot marker', { group: g.id, index: at.index, compactTo });
  }

  /** The engine asked for a snapshot to `peer`: stream a consistent view of the machine to it. */
  private streamSnapshot(group: GroupId, peer: NodeId, term: Term): void {
    const g = this.groups.get(group);
    if (g === undefined || g.role !== 'leader') return;
    this.sender.start(group, peer, term, () => g.sm.openSnapshot());
  }

  private snapshotSent(group: GroupId, peer: NodeId, ok: boolean): void {
    if (ok) this.counters.snapshotsSent++;
    const g = this.groups.get(group);
    if (g === undefined || !this.running) return;
    g.engine.reportSnapshot(peer, ok);
    this.schedule();
  }

  private receivingGroup(id: GroupId): ReceivingGroup | undefined {
    const g = this.groups.get(id);
    if (g === undefined || !this.running) return undefined;
    return {
      machine: g.sm,
      term: () => g.engine.status().term,
      appliedIndex: () => g.applied.index,
      installed: (leader, term, meta) => {
        const at = g.sm.applied();
        if (at.index > g.applied.index) {
          g.applied = at;
          this.counters.snapshotsRestored++;
        }
        g.pending.releaseReads(g.applied.index);
        // The engine resets its log to the snapshot (its Ready writes the marker) and acknowledges the leader.
        try {
          g.engine.step(
            newMessage({
              type: 'snap',
              from: leader,
              to: this.opts.id,
              term,
              snapshot: { meta, data: EMPTY },
              snapOffset: 0,
              snapDone: true,
            }),
          );
        } catch (err) {
          this.log.warn('engine refused an installed snapshot', { group: id, err: (err as Error).message });
        }
        this.schedule();
      },
    };
  }
}
