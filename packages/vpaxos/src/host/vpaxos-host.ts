import {
  type Clock,
  CodecError,
  type GroupId,
  type Logger,
  NoQuorumError,
  type NodeId,
  type ReplicatedGroup,
  type ReplicatedGroupStatus,
  type SnapshotMeta,
  type SnapshotPacer,
  type TimerHandle,
  type Transport,
  UnavailableError,
  encodeSnapshotAck,
  silentLogger,
} from '@cohort/core';
import {
  type MasterMessage,
  VP_MASTER_PROTOCOL,
  VP_PROTOCOL,
  decodeMasterMessage,
  decodeMessage,
  encodeMasterMessage,
  encodeMessage,
} from '../codec.js';
import { type AcceptorState, NOOP, type Ready, VPaxosEngine } from '../engine.js';
import {
  AcceptorStateLostError,
  NotPrimaryError,
  QuorumNotReachedError,
  StaleBallotError,
  VpTimeoutError,
} from '../errors.js';
import type { Ballot, Message, Proposal, Slot, Vote } from '../types.js';
import {
  VP_SNAPSHOT_PROTOCOL,
  type VpSnapshotLimits,
  type VpSnapshotReader,
  VpSnapshotReceiver,
  VpSnapshotSender,
  type VpSnapshotWriter,
  vpSnapshotPacer,
} from './snapshot-stream.js';

/**
 * Where a replica keeps its acceptor state. `save` resolves once the promise
 * and votes are durable (fsynced): the host sends no 1b or 2b before that.
 * With `compactTo` the same write drops the votes up to that slot and records
 * the compaction point (never lowered), which `loadAcceptor` returns.
 */
export interface AcceptorStore {
  loadAcceptor(group: GroupId): AcceptorState | Promise<AcceptorState>;
  saveAcceptor(group: GroupId, maxBallot: Ballot | undefined, votes: Vote[], compactTo?: Slot): void | Promise<void>;
}

/** The state machine chosen values are applied to, in slot order (the KV state machine's `apply(index, data)`). */
export interface VpStateMachine<R = unknown> {
  apply(slot: Slot, data: Uint8Array): R;
  /**
   * Applies consecutive chosen values together, in slot order, in one store
   * transaction (the KV state machine's `applyBatch`), returning each one's
   * result. A no-op (empty `data`, a gap a new primary filled) only moves the
   * applied slot, so {@link applied} names the last slot applied, no-ops
   * included; its result is undefined. Absent: one `apply` per command.
   */
  applyMany?(entries: readonly { slot: Slot; data: Uint8Array }[]): (R | undefined)[];
  /** Where a durable machine's state stands (the KV state machine's `applied()`): the host resumes after it. */
  applied?(): { index: Slot };
  /**
   * A consistent view of the state at the applied slot, streamed to a replica
   * that lacks slots this one compacted. With `receiveSnapshot`, it turns
   * acceptor compaction on (a machine that cannot ship its state keeps every vote).
   */
  openSnapshot?(): VpSnapshotReader | Promise<VpSnapshotReader>;
  /** Starts receiving a snapshot; the state stays untouched until its writer commits. */
  receiveSnapshot?(meta: SnapshotMeta): VpSnapshotWriter;
}

/** Hooks the simulator checks its invariants through; production leaves them out. */
export interface VpObserver {
  /** A message leaves this replica (after what it rests on is durable). */
  onSend?(to: NodeId, msg: Message): void;
  /** The acceptor state reached disk. */
  onDurable?(maxBallot: Ballot | undefined, votes: Vote[]): void;
  /** This replica became the active primary of `ballot`. */
  onActivated?(ballot: Ballot): void;
  /** As the active primary of `ballot` with these acceptors, this replica found these values chosen. */
  onChosen?(ballot: Ballot, acceptors: NodeId[], entries: Proposal[]): void;
  /** A chosen value was applied here. */
  onApply?(slot: Slot, value: Uint8Array): void;
  /** A lease read was checked and takes effect at `index` (served once that is applied). */
  onLeaseRead?(ballot: Ballot, index: Slot): void;
  /** A lagging backup received chosen values from the primary. */
  onCatchUp?(count: number): void;
  /** This replica's acceptor compacted its votes through `slot` (durably). */
  onCompacted?(slot: Slot): void;
  /** This replica finished streaming its snapshot at `index` to `to`, which installed it. */
  onSnapshotSent?(to: NodeId, index: Slot): void;
  /** This replica installed a snapshot holding every slot up to `index`. */
  onSnapshotInstalled?(index: Slot): void;
}

/** Options of a {@link VPaxosHost}. */
export interface VPaxosHostOptions<R> {
  group: GroupId;
  transport: Transport;
  clock: Clock;
  store: AcceptorStore;
  machine: VpStateMachine<R>;
  /**
   * The configuration master's node id (on the transport), or a function
   * naming it now (a replicated master moves with its group's leader;
   * undefined while none is known, and nothing is sent to it).
   */
  master: NodeId | (() => NodeId | undefined);
  /**
   * Whether a master frame from `from` is taken. @default only from the
   * current {@link VPaxosHostOptions.master}
   */
  acceptMasterFrom?: (from: NodeId) => boolean;
  /**
   * Writes are refused (NO_QUORUM, naming the copies there are) while the
   * active configuration has fewer acceptors than this: after a failover to
   * a lone survivor, until a replacement caught up. @default 1
   */
  minReplicasToWrite?: number;
  /** This run of the process; a restart must change it (the master then replaces a restarted primary). */
  incarnation: number;
  /** Heartbeat and retransmission period of a primary, local ms. @default 50 */
  heartbeatMs?: number;
  /** How often the replica tells the master it is alive, local ms. @default 100 */
  aliveMs?: number;
  /** How long a proposal or read waits before it fails, local ms. @default 1000 */
  requestTimeoutMs?: number;
  /**
   * Lease duration for lease reads, local ms; 0: no lease reads. The primary
   * uses the smaller of this and the lease the master granted with its
   * activation (the one the master waits out before activating another
   * primary). @default 0
   */
  leaseMs?: number;
  /**
   * Applied slots past the acceptor's compaction point that trigger a new
   * compaction (Raft's snapshot-entries); 0: never compact. Needs a durable
   * machine ({@link VpStateMachine.applied}) that streams snapshots
   * ({@link VpStateMachine.openSnapshot}). @default 10000
   */
  compactSlots?: number;
  /**
   * Bytes of vote values held above the compaction point that trigger a
   * compaction too, whatever the slots (Raft's snapshot-bytes): the acceptor
   * keeps every vote above its point in memory, so this bounds that memory
   * when values are large. A compaction it triggers keeps at most a quarter
   * of it behind the point (and at most `compactMarginSlots` slots); 0: slots
   * alone trigger. Only where `compactSlots` is above 0. @default 64 MiB
   */
  compactBytes?: number;
  /**
   * Applied slots kept behind the compaction point, so a backup a little
   * behind catches up slot by slot rather than by snapshot.
   * @default min(1000, compactSlots / 2)
   */
  compactMarginSlots?: number;
  /** Chunk size, rate and timeout of snapshot transfers. @default {} (1 MiB chunks, unlimited rate) */
  snapshot?: VpSnapshotLimits;
  /**
   * Paces this replica's snapshot transfers by the latency of the writes
   * served meanwhile (the primary's, proposal to applied, fed by this host);
   * pass one to share it between the node's replicas, so a transfer of one
   * partition backs off for the writes of all. Its rates replace those of
   * `snapshot`. @default one of this replica's own over `snapshot`'s rates
   */
  snapshotPacer?: SnapshotPacer;
  /** The address of a node, for the not-primary error. */
  addressOf?: (id: NodeId) => string | undefined;
  logger?: Logger;
  observer?: VpObserver;
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  timer: TimerHandle;
}

/** A proposal waiting for its slot to be applied. */
interface Proposed<T> extends Waiter<T> {
  /** When it was proposed (local clock): its latency paces snapshot transfers. */
  at: number;
}

/**
 * Drives one replica's {@link VPaxosEngine} against an acceptor store, a
 * Transport and a Clock (injected, so the simulator runs this class as the
 * binary would). Each turn takes the engine's Ready, makes the acceptor state
 * durable, then sends, then applies chosen values in slot order and answers
 * proposals and reads.
 */
export class VPaxosHost<R = unknown> implements ReplicatedGroup {
  readonly id: GroupId;
  private engine: VPaxosEngine | undefined;
  private readonly opts: Required<
    Omit<
      VPaxosHostOptions<R>,
      'addressOf' | 'logger' | 'observer' | 'acceptMasterFrom' | 'compactMarginSlots' | 'snapshotPacer'
    >
  > &
    Pick<VPaxosHostOptions<R>, 'addressOf' | 'observer' | 'acceptMasterFrom' | 'compactMarginSlots'>;
  private readonly pacer: SnapshotPacer;
  private sender: VpSnapshotSender | undefined;
  private receiver: VpSnapshotReceiver | undefined;
  private readonly logger: Logger;
  private applied: Slot = 0;
  private readonly proposals = new Map<Slot, Proposed<R>>();
  private readonly reads = new Map<number, Waiter<void>>();
  /** Reads confirmed, waiting for the state machine to reach their index. */
  private readonly waitingApply: { index: Slot; done: () => void }[] = [];
  private nextReadId = 1;
  /** When each heartbeat round was sent (local clock), for the lease. */
  private readonly roundSent = new Map<number, number>();
  private leaseUntil = Number.NEGATIVE_INFINITY;
  /** The ballot whose activation granted {@link grantedLeaseMs}. */
  private leaseBallot: Ballot = 0;
  /** The read lease the master granted with this primary's activation (0: none). */
  private grantedLeaseMs = 0;
  private scheduled = false;
  private running = false;
  private stopped = false;
  private tickTimer: TimerHandle | undefined;
  private aliveTimer: TimerHandle | undefined;
  /** The active configuration the master last announced. */
  private config: { ballot: Ballot; primary: NodeId; acceptors: NodeId[] } | undefined;
  /** The error the host stopped on, if it did. */
  failure: Error | undefined;

  constructor(options: VPaxosHostOptions<R>) {
    this.id = options.group;
    this.opts = {
      heartbeatMs: 50,
      aliveMs: 100,
      requestTimeoutMs: 1_000,
      leaseMs: 0,
      minReplicasToWrite: 1,
      compactSlots: 10_000,
      compactBytes: 64 * 1024 * 1024,
      snapshot: {},
      ...options,
    };
    this.logger = options.logger ?? silentLogger;
    this.pacer = options.snapshotPacer ?? vpSnapshotPacer(this.opts.snapshot);
  }

  /** Loads the acceptor state, registers the transport handlers and starts the timers. */
  async start(): Promise<void> {
    const state = await this.opts.store.loadAcceptor(this.id);
    this.applied = this.opts.machine.applied?.().index ?? 0;
    this.engine = new VPaxosEngine({ id: this.opts.transport.self, state, applied: this.applied });
    const t = this.opts.transport;
    t.handle(VP_PROTOCOL, (from, frame) => this.onFrame(from, frame));
    t.handle(VP_MASTER_PROTOCOL, (from, frame) => this.onMasterFrame(from, frame));
    this.startSnapshots();
    this.onTick();
    this.onAlive();
    this.schedule();
  }

  /**
   * With a machine that streams snapshots: the sender (for replicas that lack
   * slots compacted here) and the receiver (installs one, then the engine
   * resumes after it).
   */
  private startSnapshots(): void {
    const m = this.opts.machine;
    if (m.openSnapshot === undefined || m.receiveSnapshot === undefined) return;
    const t = this.opts.transport;
    this.sender = new VpSnapshotSender({
      group: this.id,
      transport: t,
      clock: this.opts.clock,
      logger: this.logger,
      limits: this.opts.snapshot,
      pacer: this.pacer,
      onDone: (peer, ok, index) => {
        if (ok) this.opts.observer?.onSnapshotSent?.(peer, index);
      },
    });
    const receive = m.receiveSnapshot.bind(m);
    this.receiver = new VpSnapshotReceiver({
      group: this.id,
      clock: this.opts.clock,
      logger: this.logger,
      maxFrameBytes: t.maxFrameBytes,
      idleMs: Math.max(10_000, 20 * this.opts.heartbeatMs),
      target: {
        promised: () => this.node.promised(),
        applied: () => this.applied,
        receive: (meta) => receive(meta),
        installed: (index) => this.snapshotInstalled(index),
      },
    });
    const receiver = this.receiver;
    t.handleRequest(VP_SNAPSHOT_PROTOCOL, (from, frame) =>
      Promise.resolve(
        this.stopped
          ? encodeSnapshotAck({ status: 'refused', reason: `the replica of ${this.id} stopped` })
          : receiver.handle(from, frame),
      ),
    );
  }

  /** The state machine holds every slot up to `index` from a snapshot: the engine resumes after it. */
  private snapshotInstalled(index: Slot): void {
    if (this.stopped) return;
    if (index > this.applied) {
      this.applied = index;
      this.opts.observer?.onSnapshotInstalled?.(index);
      this.releaseApplied();
    }
    this.node.installSnapshot(index);
    this.schedule();
  }

  /**
   * Snapshots this replica installed, and sent that were installed, since it
   * started; and the times its transfers backed off for slow writes.
   */
  snapshotCounts(): { installed: number; sent: number; paceBackoffs: number } {
    return {
      installed: this.receiver?.installedCount ?? 0,
      sent: this.sender?.sent ?? 0,
      paceBackoffs: this.sender?.paceBackoffs ?? 0,
    };
  }

  /** Stops the timers and fails every waiting request. */
  stop(): void {
    this.sender?.cancelAll();
    this.receiver?.abort();
    this.stopped = true;
    if (this.tickTimer) this.opts.clock.clearTimeout(this.tickTimer);
    if (this.aliveTimer) this.opts.clock.clearTimeout(this.aliveTimer);
    this.failAll(new UnavailableError('replica stopped'));
  }

  /** The engine (for status and tests). */
  get node(): VPaxosEngine {
    if (!this.engine) throw new Error('host not started');
    return this.engine;
  }

  /** Counters of messages ignored for their ballot. */
  get stats(): VPaxosEngine['stats'] {
    return this.node.stats;
  }

  // ---- ReplicatedGroup ----

  propose<T>(data: Uint8Array): Promise<T> {
    if (data.length === 0) return Promise.reject(new RangeError('an empty command is reserved for no-ops'));
    const copies = this.node.isActive() ? (this.node.leading()?.acceptors ?? []) : undefined;
    if (copies !== undefined && copies.length < this.opts.minReplicasToWrite) {
      return Promise.reject(
        new NoQuorumError(
          `group ${this.id} has ${copies.length} copy(ies) now (${copies.join(', ')}) and min-replicas-to-write is ${this.opts.minReplicasToWrite}: writes are refused until a replacement replica caught up; reads are served`,
        ),
      );
    }
    let slot: Slot;
    try {
      // The engine keeps the value (the primary's proposals, its own vote) until compaction: a view of a
      // larger buffer (an encoder's, a pool's) would keep all of that alive with it, 4x the values' bytes
      // under load. Its own copy holds only its bytes.
      slot = this.node.propose(data.byteLength === data.buffer.byteLength ? data : data.slice());
    } catch (e) {
      return Promise.reject(this.withAddress(e));
    }
    this.schedule();
    const at = this.opts.clock.now();
    return new Promise<T>((resolve, reject) => {
      const timer = this.opts.clock.setTimeout(() => {
        this.proposals.delete(slot);
        const missing = this.engine?.lagging(slot) ?? [];
        const ballot = this.engine?.leading()?.ballot ?? 0;
        reject(
          missing.length > 0
            ? new QuorumNotReachedError(ballot, missing)
            : new VpTimeoutError(`slot ${slot} not applied within ${this.opts.requestTimeoutMs} ms`),
        );
      }, this.opts.requestTimeoutMs);
      this.proposals.set(slot, { resolve: resolve as (v: R) => void, reject, timer, at });
    });
  }

  read(): Promise<void> {
    const id = this.nextReadId++;
    try {
      this.node.read(id);
    } catch (e) {
      return Promise.reject(this.withAddress(e));
    }
    this.schedule();
    return new Promise<void>((resolve, reject) => {
      const timer = this.opts.clock.setTimeout(() => {
        this.reads.delete(id);
        const missing = this.engine?.silent() ?? [];
        reject(
          missing.length > 0
            ? new QuorumNotReachedError(this.engine?.leading()?.ballot ?? 0, missing)
            : new VpTimeoutError(`read not confirmed within ${this.opts.requestTimeoutMs} ms`),
        );
      }, this.opts.requestTimeoutMs);
      this.reads.set(id, { resolve, reject, timer });
    });
  }

  /**
   * Serves a read under the primary's lease: checked against the monotonic
   * clock now. The lease runs from when the last heartbeat round every
   * acceptor answered was sent; no new primary can be activated until the
   * master waited the lease and the clock drift out.
   */
  leaseRead(): Promise<void> {
    const e = this.node;
    if (this.opts.leaseMs <= 0) return Promise.reject(new UnavailableError('lease reads are off (leaseMs = 0)'));
    if (!e.isActive()) return Promise.reject(this.withAddress(new NotPrimaryError(e.knownPrimary().id || undefined)));
    if (this.leaseMs() <= 0) {
      return Promise.reject(
        new UnavailableError('the master granted this primary no read lease (leases are off at the master)'),
      );
    }
    if (!(this.opts.clock.now() < this.leaseUntil)) {
      return Promise.reject(new UnavailableError('the primary lease does not hold now; use a linearizable read'));
    }
    const index = e.committed();
    const ballot = e.leading()?.ballot ?? 0;
    // The read takes effect now (its linearization point): it returns the state up to the commit of now.
    this.opts.observer?.onLeaseRead?.(ballot, index);
    return new Promise<void>((resolve) => this.afterApplied(index, resolve));
  }

  /** The lease this primary may hold: its own setting, capped by the master's grant. */
  private leaseMs(): number {
    return Math.min(this.opts.leaseMs, this.grantedLeaseMs);
  }

  status(): ReplicatedGroupStatus {
    const e = this.node;
    const lead = e.leading();
    return {
      group: this.id,
      role: e.isActive() ? 'leader' : lead ? 'candidate' : 'follower',
      term: Math.max(e.promised(), lead?.ballot ?? 0),
      leader: e.isActive() ? this.opts.transport.self : this.primaryHint(),
      commit: e.committed(),
      applied: this.applied,
    };
  }

  // ---- Inputs ----

  private onFrame(from: NodeId, frame: Uint8Array): void {
    if (this.stopped) return;
    let decoded: { group: GroupId; msg: Message };
    try {
      decoded = decodeMessage(frame);
    } catch (e) {
      this.logger.warn('vpaxos: dropped a malformed frame', { from, error: String(e) });
      return;
    }
    if (decoded.group !== this.id) return;
    this.node.step(from, decoded.msg);
    this.schedule();
  }

  private onMasterFrame(from: NodeId, frame: Uint8Array): void {
    if (this.stopped || !(this.opts.acceptMasterFrom?.(from) ?? from === this.masterId())) return;
    let decoded: { group: GroupId; msg: MasterMessage };
    try {
      decoded = decodeMasterMessage(frame);
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      this.logger.warn('vpaxos: dropped a malformed master frame', { error: e.message });
      return;
    }
    if (decoded.group !== this.id) return;
    const m = decoded.msg;
    const e = this.node;
    if (m.type === 'newBallot') {
      // The master repeats a newBallot until the ballot completes: the one this replica leads already is no news.
      if (e.leading()?.ballot === m.ballot) return;
      try {
        e.startBallot(m);
      } catch (err) {
        const lost = err instanceof AcceptorStateLostError;
        if (!(lost || err instanceof StaleBallotError || err instanceof RangeError)) throw err;
        // A repeated or outdated newBallot, or a malformed one: the master retries with a new ballot. A lost
        // acceptor state nothing here can mend: said as an error at each of the master's repeats.
        e.stats.unknownIgnored++;
        this.logger[lost ? 'error' : 'warn']('vpaxos: refused a newBallot', { ballot: m.ballot, reason: err.message });
      }
    } else if (m.type === 'activated') {
      if (!this.config || m.ballot > this.config.ballot) this.config = { ...m };
      if (m.primary === this.opts.transport.self) {
        const wasActive = e.isActive();
        e.activate(m.ballot);
        if (e.isActive() && e.leading()?.ballot === m.ballot && this.leaseBallot !== m.ballot) {
          // A new activation: the lease is earned again, under this ballot's grant.
          this.leaseBallot = m.ballot;
          this.grantedLeaseMs = m.leaseMs ?? 0;
          this.leaseUntil = Number.NEGATIVE_INFINITY;
        }
        if (!wasActive && e.isActive()) this.opts.observer?.onActivated?.(m.ballot);
      }
    }
    this.schedule();
  }

  private onTick(): void {
    if (this.stopped) return;
    const e = this.node;
    e.tick();
    const lead = e.leading();
    // `complete` may be lost: repeat it until the master activates the ballot.
    if (lead?.phase === 'complete') this.toMaster({ type: 'complete', ballot: lead.ballot });
    this.schedule();
    this.tickTimer = this.opts.clock.setTimeout(() => this.onTick(), this.opts.heartbeatMs);
  }

  private onAlive(): void {
    if (this.stopped) return;
    const e = this.node;
    this.toMaster({
      type: 'alive',
      incarnation: this.opts.incarnation,
      activeBallot: e.isActive() ? (e.leading()?.ballot ?? 0) : 0,
    });
    this.aliveTimer = this.opts.clock.setTimeout(() => this.onAlive(), this.opts.aliveMs);
  }

  // ---- The turn ----

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    this.opts.clock.defer(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      while (!this.stopped && this.node.hasReady()) {
        const rd = this.node.ready();
        await this.handle(rd);
      }
    } catch (e) {
      // A store that cannot write (or a bug): stop rather than answer from state that is not durable.
      this.failure = e instanceof Error ? e : new Error(String(e));
      this.logger.error('vpaxos: host stopped on an error', { error: String(e) });
      this.stop();
    } finally {
      this.running = false;
    }
  }

  private async handle(rd: Ready): Promise<void> {
    const obs = this.opts.observer;
    const { maxBallot, votes, compactTo } = rd.persist;
    if (maxBallot !== undefined || votes.length > 0 || compactTo !== undefined) {
      // A compaction rides the same fsynced write: it also makes the applies before it durable.
      if (compactTo === undefined) await this.opts.store.saveAcceptor(this.id, maxBallot, votes);
      else await this.opts.store.saveAcceptor(this.id, maxBallot, votes, compactTo);
      if (this.stopped) return;
      obs?.onDurable?.(maxBallot, votes);
      if (compactTo !== undefined) obs?.onCompacted?.(compactTo);
    }
    for (const s of rd.snapshots) {
      const m = this.opts.machine;
      const open = m.openSnapshot?.bind(m);
      if (this.sender !== undefined && open !== undefined) this.sender.start(s.to, s.ballot, open);
    }
    if (rd.deposed) {
      this.leaseUntil = Number.NEGATIVE_INFINITY;
      this.roundSent.clear();
      this.failAll(this.withAddress(rd.deposed));
    }
    const now = this.opts.clock.now();
    for (const r of rd.rounds) this.roundSent.set(r, now);
    if (rd.confirmedRound !== undefined) {
      const sent = this.roundSent.get(rd.confirmedRound);
      // The lease runs from the renewal's send time on this clock: no other node's clock is trusted.
      const lease = this.leaseMs();
      if (sent !== undefined && lease > 0) this.leaseUntil = Math.max(this.leaseUntil, sent + lease);
      for (const r of this.roundSent.keys()) if (r <= rd.confirmedRound) this.roundSent.delete(r);
    }
    const self = this.opts.transport.self;
    for (const { to, msg } of rd.messages) {
      obs?.onSend?.(to, msg);
      if (msg.type === 'catchUpResp') obs?.onCatchUp?.(msg.votes.length);
      if (to === self) {
        // The replica is an acceptor of its own ballot: its own vote counts once durable, as any other.
        this.opts.clock.defer(() => {
          if (this.stopped) return;
          this.node.step(self, msg);
          this.schedule();
        });
      } else {
        this.opts.transport.send(to, VP_PROTOCOL, encodeMessage(this.id, msg)).catch(() => {});
      }
    }
    if (rd.complete !== undefined) this.toMaster({ type: 'complete', ballot: rd.complete });
    if (rd.committed.length > 0) {
      const lead = this.node.leading();
      if (lead?.phase === 'active') obs?.onChosen?.(lead.ballot, lead.acceptors, rd.committed);
      this.applyCommitted(rd.committed);
      this.maybeCompact();
    }
    for (const r of rd.reads) {
      const w = this.reads.get(r.id);
      if (!w) continue;
      this.reads.delete(r.id);
      this.afterApplied(r.index, () => {
        this.opts.clock.clearTimeout(w.timer);
        w.resolve();
      });
    }
  }

  /**
   * Once `compactSlots` slots were applied past the compaction point, or the
   * votes held above it reach `compactBytes`, the acceptor drops its votes up
   * to the applied slot less the margin (the next Ready's write makes it
   * durable, after the applies it rests on).
   */
  private maybeCompact(): void {
    const every = this.opts.compactSlots;
    // A machine that restarts empty (no `applied`) replays every vote: it must keep them all.
    if (every <= 0 || this.sender === undefined || this.opts.machine.applied === undefined) return;
    const e = this.node;
    const margin = this.opts.compactMarginSlots ?? Math.min(1000, Math.floor(every / 2));
    // Never past what the machine itself says it holds: its snapshot must cover every compacted slot.
    const held = Math.min(this.applied, this.opts.machine.applied?.().index ?? this.applied);
    const bytes = this.opts.compactBytes ?? 0;
    if (held - margin - e.compactedThrough() >= every) {
      e.compact(held - margin);
    } else if (bytes > 0 && e.heldVoteBytes() >= bytes && held > e.compactedThrough()) {
      e.compact(this.pointKeeping(held, margin, bytes / 4));
    }
  }

  /**
   * The compaction point that keeps behind it, of the slots up to `held`, at
   * most `margin` slots and `maxBytes` of vote values.
   */
  private pointKeeping(held: Slot, margin: number, maxBytes: number): Slot {
    const e = this.node;
    const lowest = Math.max(held - margin, e.compactedThrough());
    let point = held;
    let kept = 0;
    while (point > lowest) {
      kept += e.vote(point)?.value.length ?? 0;
      if (kept > maxBytes) break;
      point--;
    }
    return point;
  }

  private applyCommitted(all: Proposal[]): void {
    const obs = this.opts.observer;
    // A snapshot installed while this batch was being persisted already holds its first slots.
    const entries = all.filter((e) => e.slot > this.applied);
    entries.forEach((e, i) => {
      if (e.slot !== this.applied + 1 + i) throw new Error(`vpaxos: slot ${e.slot} applied after ${this.applied + i}`);
    });
    // The batch goes to the machine together, no-ops included (they move its applied slot): one store transaction.
    const machine = this.opts.machine;
    let batched: Map<Slot, R | undefined> | undefined;
    if (machine.applyMany !== undefined && entries.length > 0) {
      const results = machine.applyMany(entries.map((e) => ({ slot: e.slot, data: e.value })));
      batched = new Map(entries.map((e, i) => [e.slot, results[i]]));
    }
    const now = this.opts.clock.now();
    for (const e of entries) {
      const result =
        e.value.length === NOOP.length
          ? undefined
          : batched !== undefined
            ? batched.get(e.slot)
            : machine.apply(e.slot, e.value);
      this.applied = e.slot;
      obs?.onApply?.(e.slot, e.value);
      const w = this.proposals.get(e.slot);
      if (w) {
        this.proposals.delete(e.slot);
        this.opts.clock.clearTimeout(w.timer);
        // The writes' latency paces snapshot transfers (they must not take the writes' share).
        this.pacer.observeWrite(now - w.at, now);
        w.resolve(result as R);
      }
    }
    this.releaseApplied();
  }

  private releaseApplied(): void {
    while (this.waitingApply.length > 0 && (this.waitingApply[0] as { index: Slot }).index <= this.applied) {
      (this.waitingApply.shift() as { done: () => void }).done();
    }
  }

  private afterApplied(index: Slot, done: () => void): void {
    if (index <= this.applied) {
      done();
      return;
    }
    // Indexes come in non-decreasing order (the commit only grows).
    this.waitingApply.push({ index, done });
  }

  private failAll(err: Error): void {
    for (const w of this.proposals.values()) {
      this.opts.clock.clearTimeout(w.timer);
      w.reject(err);
    }
    this.proposals.clear();
    for (const w of this.reads.values()) {
      this.opts.clock.clearTimeout(w.timer);
      w.reject(err);
    }
    this.reads.clear();
  }

  /** The primary this replica last heard from, or the one the master announced last ('' when none). */
  private primaryHint(): NodeId {
    const self = this.opts.transport.self;
    const known = this.node.knownPrimary();
    if (known.id !== '' && known.id !== self) return known.id;
    const announced = this.config?.primary ?? '';
    return announced === self ? '' : announced;
  }

  private withAddress(e: unknown): Error {
    if (e instanceof NotPrimaryError && e.primaryId !== undefined && e.primaryAddress === undefined) {
      const address = this.opts.addressOf?.(e.primaryId);
      if (address !== undefined) return new NotPrimaryError(e.primaryId, address);
    }
    return e instanceof Error ? e : new Error(String(e));
  }

  private masterId(): NodeId | undefined {
    const m = this.opts.master;
    return typeof m === 'function' ? m() : m;
  }

  private toMaster(m: MasterMessage): void {
    const to = this.masterId();
    if (to === undefined || to === '') return;
    this.opts.transport.send(to, VP_MASTER_PROTOCOL, encodeMasterMessage(this.id, m)).catch(() => {});
  }
}
