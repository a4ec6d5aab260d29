import {
  ClusterDownError,
  type CoalescedHeartbeat,
  type CoalescedHeartbeatResponse,
  type ConfChange,
  type ConfState,
  ConfigError,
  CorruptStateError,
  type Entry,
  type GroupId,
  type GroupMessage,
  type GroupWrite,
  type LogIndex,
  type Logger,
  type NodeId,
  NotLeaderError,
  ProposalDroppedError,
  Protocols,
  type QuorumStatus,
  type RaftHeartbeats,
  type ReplicatedGroup,
  SNAPSHOT_CHUNK_BYTES,
  type SnapshotMeta,
  SnapshotPacer,
  StorageError,
  type Term,
  type TimerHandle,
  UnavailableError,
  decodeRaftFrame,
  describeQuorumLoss,
  encodeRaftBatch,
  encodeRaftHeartbeats,
  silentLogger,
} from '@cohort/core';
import type { ForcedConfiguration } from '../force-config.js';
import { independentOfWrites, newMessage, obsoleteRejection } from '../message.js';
import type { BasicStatus } from '../status.js';
import type { Message, Ready, StateRole } from '../types.js';
import { applyEntries } from './apply-entries.js';
import type { DurableStateMachine } from './durable-state-machine.js';
import { packBySize } from './frame-packing.js';
import { startGroup } from './group-startup.js';
import type { Group } from './group.js';
import { heartbeatMessage, heartbeatResponseMessage } from './heartbeats.js';
import {
  type CatchUp,
  type GroupStatus,
  type HostFaults,
  type HostStats,
  type ProposalTiming,
  type RaftHostOptions,
  type SizedStore,
  sizedStore,
} from './host-options.js';
import {
  type MembershipChange,
  MembershipRefusedError,
  type MembershipView,
  checkTransfer,
  planJointChange,
} from './membership-admin.js';
import { PendingWork } from './pending.js';
import { rawNodeFactory } from './raw-node-engine.js';
import { ReplicaRepairs } from './replica-repair.js';
import { type ReceivingGroup, SnapshotReceiver } from './snapshot-receiver.js';
import { SnapshotSender } from './snapshot-sender.js';

/** Tick times a group keeps for lease reads (a lease rests on a tick at most an election timeout old). */
const TICK_TIMES = 256;

const EMPTY = new Uint8Array(0);
const MIB = 1024 * 1024;

/** Whether `rd` has a follower of `g` both write entries and apply committed ones. */
function followsWithApply(g: { role: StateRole }, rd: Ready): boolean {
  return g.role !== 'leader' && rd.entries.length > 0 && rd.committedEntries.length > 0;
}

/** One Ready round: a Ready of each group with work, written in one store write. */
interface Round {
  work: { g: Group; rd: Ready }[];
  batch: GroupWrite[];
  /** Messages that leave once this round's write (and every earlier one) is durable. */
  late: GroupMessage[];
  /** Groups whose term or vote this round's write changes. */
  termVote: Group[];
}

/**
 * Drives Raft engines, one per group, against a durable NodeStore, a
 * Transport and a Clock. Each round takes one Ready of every group and
 * persists them in one `store.write` (group commit). Rounds are pipelined:
 * the next round is taken while earlier writes are in flight (up to
 * `maxOutstandingReadies` per group), and rounds complete in the order taken,
 * as the store's writes do. A leader's appends and heartbeats, and a
 * follower's heartbeat answers, leave at once unless a write in flight changes
 * the group's term or vote; every other message waits for its round's write
 * (term and vote are durable before anything that depends on them, a follower
 * acknowledges only what it holds durably). Committed entries are applied as
 * the round starts: the engine hands out only entries durable locally.
 */
export class RaftHost {
  private readonly groups = new Map<GroupId, Group>();
  private readonly log: Logger;
  private readonly tickMs: number;
  private readonly requestTimeoutMs: number;
  /** The quorum window in ticks (see `RaftHostOptions.quorumWindowMs`). */
  private readonly quorumWindow: number;
  /** Ticks since the host started: the quorum window is counted in them, so a stalled event loop is no lost peer. */
  private ticks = 0;
  /** Liveness reports (peerDown, peerUp) so far: a group's cached quorum check holds only until the next. */
  private livenessReports = 0;
  private readonly snapshotEntries: number;
  private readonly snapshotBytes: number;
  private readonly margin: number;
  private readonly faults: HostFaults;
  private readonly sender: SnapshotSender;
  private readonly pacer: SnapshotPacer;
  /** Followers that installed a snapshot and catch up from the log after it, until the time given. */
  private readonly catchingUp = new Map<string, { group: GroupId; peer: NodeId; index: LogIndex; until: number }>();
  /** Snapshot transfers (group and peer) waiting for the writer before their view is opened. */
  private readonly opening = new Set<string>();
  private readonly receiver: SnapshotReceiver;
  private readonly repairs: ReplicaRepairs;
  private readonly sized: SizedStore | undefined;
  private tickTimer: TimerHandle | undefined;
  /** See {@link RaftHostOptions.commitNoticeDelayMs}. */
  private readonly commitNoticeDelayMs: number;
  /** Groups whose leader owes followers a commit index, with the index owed when noticed. */
  private noticesDue = new Map<Group, LogIndex>();
  /** Fires {@link flushCommitNotices} while `noticesDue` holds a group. */
  private noticeTimer: TimerHandle | undefined;
  /** See {@link RaftHostOptions.readIndexHedgeMs}. */
  private readonly readIndexHedgeMs: number;
  /** Groups whose open ReadIndex round has asked only a quorum of followers so far. */
  private readonly hedgesDue = new Set<Group>();
  /** Fires {@link hedgeReadRounds} while `hedgesDue` holds a group. */
  private hedgeTimer: TimerHandle | undefined;
  private scheduled = false;
  private running = false;
  /** A round is under way (its store write may be in flight). */
  private busy = false;
  /** Work arrived while a round was under way: run another. */
  private again = false;
  private readCounter = 0;
  private readonly counters: HostStats = {
    rounds: 0,
    roundsOverlapped: 0,
    storeWrites: 0,
    applyPauses: 0,
    readRounds: 0,
    readHedges: 0,
    storeWriteMs: 0,
    entriesPersisted: 0,
    entriesApplied: 0,
    messagesSent: 0,
    messagesSentBeforeWrite: 0,
    sendFailures: 0,
    framesReceived: 0,
    snapshotsTaken: 0,
    snapshotsRestored: 0,
    snapshotsSent: 0,
    snapshotChunksSent: 0,
    snapshotPaceBackoffs: 0,
    followersLostEntries: 0,
    replicaRepairs: 0,
    replicaRepairsDone: 0,
    groupsQuiesced: 0,
    groupsWoken: 0,
    heartbeatFramesSent: 0,
    heartbeatsCoalesced: 0,
  };
  private readonly quiesceAfterTicks: number;
  private readonly coalesce: boolean;
  /** Peers the liveness source reports down (see {@link peerDown}). */
  private readonly down = new Set<NodeId>();
  private readonly isDown = (id: NodeId): boolean => this.down.has(id);
  /** Coalesced heartbeats and answers waiting to leave, per peer. */
  private readonly heartbeatsOut = new Map<NodeId, RaftHeartbeats & { groups: GroupId[] }>();
  /** Called when a group goes quiescent here (`true`) or wakes (`false`). */
  onQuiescence: ((group: GroupId, quiescent: boolean) => void) | undefined;
  /** Called once the host stopped because its store failed (after logging it). */
  onFatal: ((err: Error) => void) | undefined;
  /**
   * Called as each committed membership change of a group is applied here (before the entries after
   * it), with its context: a node learns a new member's address from it before messages flow.
   */
  onConfChange: ((group: GroupId, cc: ConfChange) => void) | undefined;
  /** Called when a group's leader or role changes. */
  onLeaderChange: ((group: GroupId, leader: NodeId, role: StateRole) => void) | undefined;
  /**
   * Called for each proposal this node made as leader, once applied, with when it reached each
   * phase by the host's clock (for latency histograms). Unset, the host keeps no phase times.
   */
  onProposalTiming: ((group: GroupId, timing: ProposalTiming) => void) | undefined;

  constructor(private readonly opts: RaftHostOptions) {
    this.log = (opts.logger ?? silentLogger).child({ node: opts.id });
    this.tickMs = opts.tickMs ?? 100;
    this.commitNoticeDelayMs = opts.commitNoticeDelayMs ?? 5;
    if (!(this.commitNoticeDelayMs >= 0)) {
      throw new ConfigError(`commitNoticeDelayMs must be 0 or more, got ${this.commitNoticeDelayMs}`);
    }
    this.readIndexHedgeMs = opts.readIndexHedgeMs ?? 5;
    if (!(this.readIndexHedgeMs >= 0)) {
      throw new ConfigError(`readIndexHedgeMs must be 0 or more, got ${this.readIndexHedgeMs}`);
    }
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    const electionTicks = opts.electionTicks ?? 5;
    this.quorumWindow =
      opts.quorumWindowMs === undefined
        ? (opts.electionTicksMax ?? 2 * electionTicks - 1) + 1
        : Math.max(1, Math.ceil(opts.quorumWindowMs / this.tickMs));
    this.snapshotEntries = opts.snapshotEntries ?? 10_000;
    this.snapshotBytes = opts.snapshotBytes ?? 100 * MIB;
    this.sized = sizedStore(opts.store);
    this.margin = opts.compactionMarginEntries ?? Math.min(1000, Math.floor(this.snapshotEntries / 2));
    this.faults = opts.faults ?? {};
    this.quiesceAfterTicks = opts.quiesce ? Math.max(1, opts.quiesceAfterTicks ?? opts.electionTicks ?? 5) : 0;
    this.coalesce = opts.coalesceHeartbeats ?? true;
    const maxFrame = opts.transport.maxFrameBytes;
    const rate = opts.snapshotBytesPerSec ?? 0;
    this.pacer = new SnapshotPacer({
      maxBytesPerSec: rate,
      minBytesPerSec: opts.snapshotMinBytesPerSec ?? rate / 16,
      onBackoff: () => {
        this.counters.snapshotPaceBackoffs++;
      },
    });
    this.sender = new SnapshotSender({
      self: opts.id,
      transport: opts.transport,
      clock: opts.clock,
      logger: this.log,
      // Room for the envelope and the chunk's header within one frame.
      chunkBytes: Math.max(1, Math.min(opts.snapshotChunkBytes ?? SNAPSHOT_CHUNK_BYTES, maxFrame - 64 * 1024)),
      timeoutMs: opts.snapshotTimeoutMs ?? 600_000,
      retryMs: opts.snapshotRetryMs ?? 50,
      maxRetries: opts.snapshotRetries ?? 10,
      maxBytesPerSec: rate,
      pacer: this.pacer,
      onDone: (group, peer, ok, index) => this.snapshotSent(group, peer, ok, index ?? 0),
      onCorrupt: (group, err) => this.repair(group, err),
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
    this.repairs = new ReplicaRepairs({
      self: opts.id,
      transport: opts.transport,
      clock: opts.clock,
      log: this.log,
      retryMs: opts.repairRetryMs ?? 5000,
      group: (id) => this.groups.get(id),
      running: () => this.running,
      receiving: (group) => this.receiver.receiving(group),
      handOver: (g) => this.handOver(g),
      stream: (g, peer) =>
        this.sender.start(g.id, peer, g.engine.status().term, () => g.sm.openSnapshot(), g.sm.applied().index),
      firstIndex: (group) => this.opts.store.group(group).firstIndex(),
      replay: (g, lo, hi) => this.replay(g, lo, hi),
      logMatches: (g, meta) => this.logMatches(g, meta),
      schedule: () => this.schedule(),
      onStarted: (group) => {
        this.counters.replicaRepairs++;
        this.receiver.forget(group);
      },
      onRestored: () => {
        this.counters.replicaRepairsDone++;
      },
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
    start.repairWrite?.catch((err: Error) => {
      this.log.error('could not write the repair marker', { group, err: err.message });
      this.fatal('writing the repair marker', err);
    });
    const reader = start.reader;
    const hs = reader.initialState().hardState;
    const fresh = reader.lastIndex() === 0 && hs.term === 0;
    const o = this.opts;
    const engine = (o.createEngine ?? rawNodeFactory)(
      {
        id: o.id,
        electionTick: o.electionTicks ?? 5,
        ...(o.electionTicksMax !== undefined ? { electionTickMax: o.electionTicksMax } : {}),
        heartbeatTick: o.heartbeatTicks ?? 1,
        ...(o.leaseReads ? { readOnlyOption: 'leaseOnRequest' as const, checkQuorum: true } : {}),
        random: o.random,
        applied: start.applied.index,
        // This host sends a leader's appends while its own write is in flight (see rounds()).
        asyncStorageWrites: true,
        maxOutstandingReadies: o.maxOutstandingReadies ?? 4,
        ...(o.maxAppendBytes !== undefined ? { maxSizePerMsg: o.maxAppendBytes } : {}),
        ...(o.maxInflightAppends !== undefined ? { maxInflightMsgs: o.maxInflightAppends } : {}),
        ...(o.maxInflightBytes !== undefined ? { maxInflightBytes: o.maxInflightBytes } : {}),
        maxCatchUpInflightBytes: o.maxCatchUpInflightBytes ?? 4 * MIB,
        maxCommittedSizePerReady: o.maxApplyBytes ?? MIB,
        deferCommitNotice: this.commitNoticeDelayMs > 0,
        readIndexFanout: this.readIndexHedgeMs > 0 ? 'quorum' : 'all',
      },
      reader,
      fresh && voters.length > 0 ? [...voters].sort() : undefined,
      group,
    );
    const s = engine.status();
    if (this.applyPaused) engine.pauseApplying?.(true);
    const record = (t: ProposalTiming) => {
      // The writes' latency paces snapshot transfers (they must not take the writes' share).
      this.pacer.observeWrite(t.applied - t.proposed, t.applied);
      this.onProposalTiming?.(group, t);
    };
    this.groups.set(group, {
      id: group,
      engine,
      sm,
      pending: new PendingWork({
        now: () => this.opts.clock.now(),
        record: () => (this.onProposalTiming === undefined && !this.pacer.adaptive ? undefined : record),
      }),
      applied: start.applied,
      confApplied: start.applied.index,
      // What the machine reports may not be fsynced yet; the marker is.
      durable: start.snapshot,
      snapshotIndex: start.snapshot.index,
      role: s.role,
      lead: s.lead,
      term: hs.term,
      vote: hs.vote,
      termVoteWrites: 0,
      compacting: false,
      readBatch: undefined,
      readRounds: new Map(),
      lostEntriesLogged: s.lostEntries ?? 0,
      quiescent: false,
      idleTicks: 0,
      idleCommit: s.commit,
      ticks: 1,
      tickTimes: [],
      heard: new Map(),
      quorumOkAt: { tick: -1, reports: 0 },
      // A starting replica gets one window to find its leader before it reports the quorum lost.
      healthyAt: this.ticks,
    });
    (this.groups.get(group) as Group).tickTimes[1] = this.opts.clock.now();
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

  /**
   * Stops hosting `group` here (this node was removed from it): fails what
   * waits on it and drops its snapshot transfers; messages for it are
   * dropped from now on. Its rows stay in the store; a later `addGroup`
   * resumes from them and the leader brings it up to date. False when not hosted.
   */
  removeGroup(group: GroupId): boolean {
    const g = this.groups.get(group);
    if (g === undefined) return false;
    this.groups.delete(group);
    this.sender.cancel(group);
    this.receiver.abort(group);
    this.receiver.forget(group);
    g.pending.failAll(new UnavailableError(`${group} is no longer hosted on this node`));
    this.log.info('group removed', { group });
    return true;
  }

  /** The groups hosted here. */
  groupIds(): GroupId[] {
    return [...this.groups.keys()];
  }

  /** Registers the Raft protocol handler and starts ticking. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.opts.transport.handle(Protocols.raft, (from, frame) => this.receive(from, frame));
    this.opts.transport.handleRequest(Protocols.snapshot, async (from, frame) => this.receiver.handle(from, frame));
    this.repairs.start();
    this.tickTimer = this.opts.clock.setTimeout(() => this.onTick(), this.tickMs);
  }

  /** Stops ticking and fails whatever still waits. The store is the caller's to close. */
  stop(): void {
    this.running = false;
    if (this.tickTimer !== undefined) this.opts.clock.clearTimeout(this.tickTimer);
    if (this.noticeTimer !== undefined) this.opts.clock.clearTimeout(this.noticeTimer);
    this.noticeTimer = undefined;
    this.noticesDue.clear();
    if (this.hedgeTimer !== undefined) this.opts.clock.clearTimeout(this.hedgeTimer);
    this.hedgeTimer = undefined;
    this.hedgesDue.clear();
    this.flushDeferred();
    this.sender.cancel();
    this.receiver.abortAll();
    this.repairs.stop(this.groups.values());
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
      ...(this.opts.leaseReads ? { leaseRead: () => this.leaseRead(group) } : {}),
      status: () => this.status(group),
      // A handle may outlive its group (removed from this node while a request was in flight): a group
      // no longer hosted here has no quorum view, and must not throw from its user's timers.
      quorumLost: () => {
        const g = this.groups.get(group);
        return g === undefined ? undefined : this.quorumLost(g);
      },
      leadership: () => {
        const b = this.basic(this.groupOf(group));
        return { role: b.role, leader: b.lead };
      },
    };
  }

  /** Term, leader, role and last index of `g`'s engine, read cheaply when the engine can. */
  private basic(g: Group): BasicStatus {
    return g.engine.basicStatus?.() ?? g.engine.status();
  }

  /** Whether this node leads `group`. */
  isLeader(group: GroupId): boolean {
    return this.basic(this.groupOf(group)).role === 'leader';
  }

  status(group: GroupId): GroupStatus {
    const g = this.groupOf(group);
    const s = g.engine.status();
    const reader = this.opts.store.group(group);
    const cs = s.confState;
    return {
      group,
      role: s.role,
      term: s.term,
      leader: s.lead,
      commit: s.commit,
      applied: g.applied.index,
      firstIndex: reader.firstIndex(),
      lastIndex: reader.lastIndex(),
      repairing: g.repair !== undefined,
      quiescent: g.engine.isQuiescent?.() ?? false,
      quorum: this.quorumOf(g, s),
      voters: [...cs.voters],
      learners: [...cs.learners],
      votersOutgoing: [...cs.votersOutgoing],
      ...(s.role === 'leader' ? { match: { ...(g.engine.matchIndexes() ?? {}) } } : {}),
      ...(s.role === 'leader' && s.leadTransferee ? { transferee: s.leadTransferee } : {}),
    };
  }

  /** How many hosted groups are quiescent here. */
  quiescentGroups(): number {
    let n = 0;
    for (const g of this.groups.values()) if (g.engine.isQuiescent?.()) n++;
    return n;
  }

  /**
   * The liveness source (SWIM on a node, the failure schedule in the simulator) reports `node`
   * down or unreachable. A quiescent group led by `node` wakes here, so its election timer runs
   * again; a quiescent group this node leads with `node` as a member wakes, so check-quorum runs
   * again. Groups may quiesce again without `node` caught up while it stays down.
   */
  peerDown(node: NodeId): void {
    if (node === this.opts.id || this.down.has(node)) return;
    this.down.add(node);
    this.livenessReports++;
    this.wakeWhere((g) => (g.role === 'leader' ? this.hasMember(g, node) : g.engine.status().lead === node));
  }

  /** The liveness source reports `node` up again: quiescent groups this node leads with it as a member wake to catch it up. */
  peerUp(node: NodeId): void {
    if (!this.down.delete(node)) return;
    this.livenessReports++;
    this.wakeWhere((g) => g.role === 'leader' && this.hasMember(g, node));
  }

  private hasMember(g: Group, node: NodeId): boolean {
    const cs = g.engine.status().confState;
    return cs.voters.includes(node) || cs.learners.includes(node) || cs.votersOutgoing.includes(node);
  }

  private wakeWhere(pred: (g: Group) => boolean): void {
    if (!this.running) return;
    let woke = false;
    for (const g of this.groups.values()) {
      if (!g.engine.isQuiescent?.() || !pred(g)) continue;
      g.engine.wake?.();
      this.noteWake(g);
      woke = true;
    }
    if (woke) this.schedule();
  }

  /** Records that `g`'s engine woke, if it did (any step, proposal, read or campaign wakes it). */
  private noteWake(g: Group): void {
    if (!g.quiescent || g.engine.isQuiescent?.()) return;
    g.quiescent = false;
    g.idleTicks = 0;
    this.counters.groupsWoken++;
    this.onQuiescence?.(g.id, false);
  }

  private noteQuiesced(g: Group): void {
    g.quiescent = true;
    g.idleTicks = 0;
    this.counters.groupsQuiesced++;
    this.onQuiescence?.(g.id, true);
  }

  /**
   * An idle leader quiesces its group: it stops ticking it and queues a quiesce heartbeat for
   * every follower. Idle: nothing pending here for `quiesceAfterTicks` ticks with the commit
   * index unchanged, and the engine agrees (see quiesce.ts).
   */
  private maybeQuiesce(g: Group): boolean {
    const commit = g.engine.commitIndex?.() ?? g.engine.status().commit;
    const busy =
      g.pending.size > 0 ||
      g.readBatch !== undefined ||
      g.readRounds.size > 0 ||
      g.repair !== undefined ||
      g.deferredHardState !== undefined ||
      commit !== g.idleCommit;
    g.idleCommit = commit;
    if (busy) {
      g.idleTicks = 0;
      return false;
    }
    if (++g.idleTicks < this.quiesceAfterTicks || g.engine.hasReady()) return false;
    const hb = g.engine.quiesce?.(this.isDown);
    if (hb === undefined) return false;
    this.noteQuiesced(g);
    for (const peer of hb.peers) {
      this.queueHeartbeat(peer, g.id, {
        group: g.id,
        term: hb.term,
        commit: hb.commit,
        tick: 0,
        context: EMPTY,
        quiesce: true,
      });
    }
    return true;
  }

  private outbox(peer: NodeId): RaftHeartbeats & { groups: GroupId[] } {
    let out = this.heartbeatsOut.get(peer);
    if (out === undefined) {
      out = { heartbeats: [], responses: [], groups: [] };
      this.heartbeatsOut.set(peer, out);
    }
    return out;
  }

  private queueHeartbeat(peer: NodeId, group: GroupId, hb: CoalescedHeartbeat): void {
    const out = this.outbox(peer);
    out.heartbeats.push(hb);
    out.groups.push(group);
  }

  private queueHeartbeatResponse(peer: NodeId, group: GroupId, r: CoalescedHeartbeatResponse): void {
    const out = this.outbox(peer);
    out.responses.push(r);
    out.groups.push(group);
  }

  /** Sends the queued coalesced heartbeats: one frame per peer. */
  private flushHeartbeats(): void {
    if (this.heartbeatsOut.size === 0) return;
    for (const [peer, out] of this.heartbeatsOut) {
      this.sendHeartbeats(peer, out.heartbeats, out.responses, out.groups);
    }
    this.heartbeatsOut.clear();
  }

  /** One frame of heartbeats and answers to `peer`, or halves of it while it is over the frame limit. */
  private sendHeartbeats(
    peer: NodeId,
    heartbeats: CoalescedHeartbeat[],
    responses: CoalescedHeartbeatResponse[],
    groups: GroupId[],
  ): void {
    const n = heartbeats.length + responses.length;
    let frame: Uint8Array;
    try {
      frame = encodeRaftHeartbeats({ heartbeats, responses }, { maxBytes: this.opts.transport.maxFrameBytes });
    } catch (err) {
      if (n <= 1) {
        this.log.error('a heartbeat larger than a frame; dropped', { to: peer, err: (err as Error).message });
        return;
      }
      if (heartbeats.length > 0 && responses.length > 0) {
        this.sendHeartbeats(peer, heartbeats, [], groups);
        this.sendHeartbeats(peer, [], responses, groups);
      } else {
        const h = Math.ceil(heartbeats.length / 2);
        const r = Math.ceil(responses.length / 2);
        this.sendHeartbeats(peer, heartbeats.slice(0, h), responses.slice(0, r), groups);
        this.sendHeartbeats(peer, heartbeats.slice(h), responses.slice(r), groups);
      }
      return;
    }
    this.counters.heartbeatFramesSent++;
    this.counters.heartbeatsCoalesced += n;
    this.counters.messagesSent += n;
    this.opts.transport.send(peer, Protocols.raft, frame).catch((err: Error) => {
      this.counters.sendFailures++;
      this.log.debug('raft send failed', { peer, err: (err as Error).message });
      for (const group of groups) this.groups.get(group)?.engine.reportUnreachable(peer);
    });
  }

  /**
   * Whether `g` reaches a quorum from here, by when this replica last heard
   * from each voter (see {@link QuorumStatus}). A leader hears from every
   * live follower each heartbeat; a follower hears from its leader, and,
   * while no leader is known, from the voters answering its (pre-)votes.
   * Notes when the replica last had a reachable leader.
   */
  private quorumOf(g: Group, s: ReturnType<Group['engine']['status']>): QuorumStatus {
    const now = this.ticks;
    const window = this.quorumWindow;
    const self = this.opts.id;
    // A quiescent group exchanges no messages: its peers count as heard unless the liveness source
    // reported them down (see peerDown), which also wakes the group.
    const quiet = g.quiescent;
    const heardAt = (id: NodeId): number =>
      id === self || (quiet && !this.down.has(id)) ? now : (g.heard.get(id) ?? Number.NEGATIVE_INFINITY);
    const alive = (id: NodeId): boolean => now - heardAt(id) <= window;
    const majority = (ids: NodeId[]): boolean => ids.filter(alive).length > ids.length / 2;
    const cs = s.confState;
    const quorumOk =
      cs.voters.length > 0 && majority(cs.voters) && (cs.votersOutgoing.length === 0 || majority(cs.votersOutgoing));
    const healthy = s.role === 'leader' ? quorumOk : s.lead !== '' && alive(s.lead);
    // The last tick with evidence of a live leader: the leader's own quorum heard (the quorum-th most
    // recent voter), or the follower's last message from its leader. The window counts from there, so a
    // replica whose peers died says so about one window after it last heard from them.
    const quorumAt = (ids: NodeId[]): number =>
      ids.length === 0
        ? Number.POSITIVE_INFINITY
        : (ids.map(heardAt).sort((a, b) => b - a)[Math.floor(ids.length / 2)] as number);
    const evidence =
      s.role === 'leader'
        ? Math.min(quorumAt(cs.voters), quorumAt(cs.votersOutgoing))
        : s.lead !== ''
          ? heardAt(s.lead)
          : Number.NEGATIVE_INFINITY;
    if (Number.isFinite(evidence) && evidence > g.healthyAt) g.healthyAt = evidence;
    const leaderlessMs = healthy ? 0 : now - g.healthyAt;
    const voters = [...new Set([...cs.voters, ...cs.votersOutgoing])].sort();
    // Test-only fault: a host that trusts its leadership unchecked never finds its quorum lost either.
    const lost = leaderlessMs >= window && !quorumOk && voters.length > 0 && !this.faults.readsWithoutReadIndex;
    return {
      self,
      state: healthy ? 'ok' : lost ? 'lost' : 'electing',
      voters,
      unreachable: voters.filter((v) => !alive(v)),
      needed: Math.floor(cs.voters.length / 2) + 1,
      leaderlessMs: leaderlessMs * this.tickMs,
      windowMs: window * this.tickMs,
    };
  }

  /** The error for a request to `g` while its quorum is lost from here; undefined while it is not. */
  private clusterDown(g: Group): ClusterDownError | undefined {
    const q = this.quorumLost(g);
    return q === undefined ? undefined : new ClusterDownError(describeQuorumLoss(q));
  }

  /**
   * `g`'s quorum status while it is lost from here; undefined while it is not. The window is counted in
   * ticks, so a group found not lost stays so until the next tick (or a liveness report): requests in
   * between skip the check.
   */
  private quorumLost(g: Group): QuorumStatus | undefined {
    if (g.quorumOkAt.tick === this.ticks && g.quorumOkAt.reports === this.livenessReports) return undefined;
    const q = this.quorumOf(g, g.engine.status());
    if (q.state === 'lost') return q;
    g.quorumOkAt = { tick: this.ticks, reports: this.livenessReports };
    return undefined;
  }

  /**
   * `group`'s state machine found its own data corrupt (a checksum failed)
   * while its log is intact: the replica stops serving the group, hands over
   * its leadership, and restores the state from a healthy replica's snapshot
   * plus its own log, without stopping (see `ReplicaRepairs`).
   */
  repair(group: GroupId, err: CorruptStateError): void {
    const g = this.groups.get(group);
    if (g !== undefined) this.repairs.begin(g, err);
  }

  /**
   * Proposes `data` to `group`; resolves with the state machine's result once
   * the entry is applied here. Rejects with NotLeaderError (with the leader
   * when known), ProposalDroppedError (never appended, or an entry of another
   * term applied at its index: it cannot commit), UnavailableError (its entry
   * was replaced in this node's log by a newer leader's: outcome unknown, it
   * may still commit) or TimeoutError.
   */
  propose<R>(group: GroupId, data: Uint8Array): Promise<R> {
    const g = this.groupOf(group);
    // The engine's live state, not the last Ready's: a follower names the leader as soon as it knows it.
    const s = this.basic(g);
    const down = this.clusterDown(g);
    if (down) return Promise.reject(down);
    if (s.role !== 'leader') return Promise.reject(new NotLeaderError(s.lead || undefined));
    let at: { index: LogIndex; term: number };
    try {
      this.admit(group, data.length);
      // Wakes a quiescent group.
      at = g.engine.propose(data);
    } catch (err) {
      return Promise.reject(err);
    } finally {
      this.noteWake(g);
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
    const s = this.basic(g);
    const down = this.clusterDown(g);
    if (down) return Promise.reject(down);
    if (s.role !== 'leader') return Promise.reject(new NotLeaderError(s.lead || undefined));
    if (g.repair !== undefined) {
      return Promise.reject(
        new UnavailableError(`group ${group}: this replica is restoring its state from a healthy replica; retry`),
      );
    }
    // Test-only fault: serve at once, as a leader that lost its leadership unknowingly would.
    if (this.faults.readsWithoutReadIndex) return Promise.resolve();
    // A quiescent leader serves no read by its lease: it wakes, and its round (or lease) starts afresh.
    if (g.engine.wake?.()) this.noteWake(g);
    // Reads arriving in the same turn share one ReadIndex round (started in processReady): every one
    // of them began before the round did, so its confirmed index is recent enough for all. They wait as
    // one, under the first one's deadline (the batch closes within the turn, or the Ready round under way).
    // A batch whose read was already answered (refused: leadership or quorum lost, shutdown) takes no more.
    let batch = g.readBatch;
    if (batch === undefined || !g.pending.hasRead(batch.ctx)) {
      const ctx = `${this.opts.id}/r${++this.readCounter}`;
      batch = { ctx, done: g.pending.addRead(ctx, this.opts.clock.now() + this.requestTimeoutMs) };
      g.readBatch = batch;
      this.schedule();
    }
    return batch.done;
  }

  /**
   * Resolves once this node, the leader of `group`, may serve a read under its
   * lease, with no ReadIndex round: the engine reports a lease (a quorum
   * acknowledged a heartbeat recently enough, see lease.ts) and, by the
   * monotonic clock, less than the lease's span of ticks has passed since the
   * tick it rests on, both when asked and once the commit index it reads at
   * is applied. Rejects with `NotLeaderError`, or `UnavailableError` when no
   * lease holds (the caller reads with a ReadIndex round instead).
   */
  leaseRead(group: GroupId): Promise<void> {
    const g = this.groupOf(group);
    const s = this.basic(g);
    if (s.role !== 'leader') return Promise.reject(new NotLeaderError(s.lead || undefined));
    if (g.repair !== undefined) {
      return Promise.reject(
        new UnavailableError(`group ${group}: this replica is restoring its state from a healthy replica; retry`),
      );
    }
    const lease = g.engine.leaseRead?.();
    // The host counts the engine's ticks to know when each was reached; should the counts ever differ, no lease.
    const until = lease && lease.ticks === g.ticks ? this.leaseUntil(g, lease.base, lease.span) : undefined;
    const expired = (): UnavailableError =>
      new UnavailableError(
        `group ${group}: the leader's lease does not hold now (no quorum acknowledged a heartbeat within the lease, or this node was stalled); read with consistency=linearizable`,
      );
    if (lease === undefined || until === undefined || this.opts.clock.now() >= until) return Promise.reject(expired());
    const check = (): void => {
      if (this.opts.clock.now() >= until) throw expired();
    };
    if (g.applied.index >= lease.index) return Promise.resolve();
    const ctx = `${this.opts.id}/l${++this.readCounter}`;
    const done = g.pending.addRead(ctx, this.opts.clock.now() + this.requestTimeoutMs);
    g.pending.readConfirmed(ctx, lease.index);
    return done.then(check);
  }

  /** The monotonic time the lease resting on tick `base` ends at; undefined when that tick is too old to know. */
  private leaseUntil(g: Group, base: number, span: number): number | undefined {
    if (base > g.ticks || g.ticks - base >= TICK_TIMES) return undefined;
    const at = g.tickTimes[base % TICK_TIMES];
    return at === undefined ? undefined : at + span * this.tickMs;
  }

  /**
   * Changes `group`'s membership: adds a learner, promotes a learner to
   * voter, or removes a member. One change is one Raft conf change, applied
   * directly. Several (an array, e.g. promote a caught-up learner and remove
   * the voter it replaces) go through one joint configuration (§6) that the
   * leader leaves on its own once it is applied: the group never runs with
   * both voters outside a joint configuration, and the promise resolves once
   * the group left it (the final configuration is applied here). This node
   * must lead the group. Rejects with MembershipRefusedError, before
   * proposing anything, what would leave fewer reachable voters than a
   * quorum (the outgoing and the incoming voters, for a joint change) or
   * cannot be safe now (see `planMembershipChange`,
   * {@link planJointChange}); with UnavailableError when the group did not
   * leave the joint configuration within the request timeout (its leader
   * still leaves it). A joint change may remove the leader: it leads the
   * joint configuration and steps down once the group left it. `context`
   * travels with the change to every replica (see {@link onConfChange}).
   */
  async changeMembership(
    group: GroupId,
    change: MembershipChange | readonly MembershipChange[],
    context: Uint8Array = EMPTY,
  ): Promise<ConfState> {
    const g = this.groupOf(group);
    const s = g.engine.status();
    const down = this.clusterDown(g);
    if (down) throw down;
    if (s.role !== 'leader') throw new NotLeaderError(s.lead || undefined);
    const ccs = planJointChange(this.membershipView(g), 'op' in change ? [change] : change);
    const deadline = this.opts.clock.now() + this.requestTimeoutMs;
    const at = g.engine.proposeConfChange({ transition: 'auto', changes: ccs, context });
    const joint = ccs.length > 1;
    this.log.info(joint ? 'joint membership change proposed' : 'membership change proposed', {
      group,
      ...(joint ? { changes: ccs } : { change: ccs[0] }),
      index: at.index,
    });
    this.schedule();
    await g.pending.addProposal(at.index, at.term, deadline);
    if (joint) await this.leftJoint(g, deadline);
    const cs = g.engine.status().confState;
    return { ...cs, voters: [...cs.voters], learners: [...cs.learners], votersOutgoing: [...cs.votersOutgoing] };
  }

  /** Resolves once `g` applied a configuration that is not joint (checked each tick), or rejects at `deadline`. */
  private async leftJoint(g: Group, deadline: number): Promise<void> {
    for (;;) {
      const cs = g.engine.status().confState;
      if (cs.votersOutgoing.length === 0) {
        this.log.info('joint configuration left', { group: g.id, voters: cs.voters, learners: cs.learners });
        return;
      }
      if (this.opts.clock.now() >= deadline || !this.running) {
        throw new UnavailableError(
          `${g.id} entered the joint configuration ${cs.votersOutgoing.join(', ')} -> ${cs.voters.join(', ')} but did not leave it within ${this.requestTimeoutMs} ms; its leader leaves it on its own once it can commit (check the group's status), so retry no change before then`,
        );
      }
      await new Promise<void>((r) => this.opts.clock.setTimeout(r, this.tickMs));
    }
  }

  /**
   * Hands `group`'s leadership (this node must lead it) to the voter `to`,
   * which campaigns once its log has caught up. Resolves with the new leader
   * once this node sees it lead; rejects with MembershipRefusedError when `to`
   * cannot lead, UnavailableError when the transfer did not finish within
   * the request timeout.
   */
  async transferLeadership(group: GroupId, to: NodeId): Promise<NodeId> {
    const g = this.groupOf(group);
    const s = g.engine.status();
    if (s.role !== 'leader') throw new NotLeaderError(s.lead || undefined);
    checkTransfer(this.membershipView(g), to);
    g.engine.transferLeadership(to);
    this.log.info('leadership transfer requested', { group, to });
    this.schedule();
    const deadline = this.opts.clock.now() + this.requestTimeoutMs;
    const retryEvery = this.opts.electionTicks ?? 5;
    for (let tick = 1; ; tick++) {
      const now = g.engine.status();
      if (now.lead === to) return to;
      // The engine abandons a transfer after an election timeout (the target may not have applied the
      // latest membership yet, and so not campaigned): ask again while this node still leads.
      if (tick % retryEvery === 0 && now.role === 'leader') {
        g.engine.transferLeadership(to);
        this.schedule();
      }
      if (this.opts.clock.now() >= deadline || !this.running) {
        throw new UnavailableError(
          `leadership did not move to ${to} within ${this.requestTimeoutMs} ms (leader now: ${now.lead || 'none'}); check that ${to} is up and caught up, then retry`,
        );
      }
      await new Promise<void>((r) => this.opts.clock.setTimeout(r, this.tickMs));
    }
  }

  /**
   * On the leader of `group`, an operator's trigger: makes replica `peer`
   * catch up now instead of when replication next gets to it. A replica whose
   * next entry the leader's log no longer holds gets a snapshot streamed at
   * once; one behind within the log is probed again from its match index (its
   * missing appends resent); one caught up gets nothing. Answers what was done
   * with the replica's match index and the leader's last index. `peer` being
   * this node, the leader, holds every entry: caught up (leadership may move to
   * the replica an operator names just before it asks). Throws NotLeaderError
   * elsewhere, MembershipRefusedError when `peer` is not a replica of the group.
   */
  catchUp(group: GroupId, peer: NodeId): CatchUp {
    const g = this.groupOf(group);
    const s = g.engine.status();
    if (s.role !== 'leader') throw new NotLeaderError(s.lead || undefined);
    if (peer === this.opts.id) return { peer, match: s.lastIndex, lastIndex: s.lastIndex, action: 'caught-up' };
    const cs = s.confState;
    if (![...cs.voters, ...cs.learners].includes(peer)) {
      throw new MembershipRefusedError(
        `${peer} is not a replica of ${group} to catch up (replicas: ${[...cs.voters, ...cs.learners].join(', ')}; ${this.opts.id} leads)`,
      );
    }
    const match = g.engine.matchIndexes()?.[peer] ?? 0;
    const lastIndex = s.lastIndex;
    if (match >= lastIndex) return { peer, match, lastIndex, action: 'caught-up' };
    g.engine.wake?.();
    this.noteWake(g);
    let action: CatchUp['action'];
    if (match + 1 < this.opts.store.group(group).firstIndex()) {
      this.streamSnapshot(group, peer, s.term);
      action = 'snapshot';
    } else {
      g.engine.reportUnreachable(peer);
      action = 'probe';
    }
    this.log.info('catch-up triggered', { group, peer, match, lastIndex, action });
    this.schedule();
    return { peer, match, lastIndex, action };
  }

  /**
   * Unsafe recovery of `group` after it lost its quorum for good: rewrites
   * its membership to `voters` (this node among them) without consensus (see
   * `RawNode.forceConfiguration`), then campaigns once the forced membership
   * is durable and applied, and resolves once this node leads. Writes the
   * lost replicas committed past this node's log are gone. Throws
   * MembershipRefusedError when the engine cannot force a membership or the
   * replica is restoring its state, ConfigError for a bad voter list,
   * UnavailableError when it did not lead within the request timeout.
   */
  async forceConfiguration(group: GroupId, voters: NodeId[]): Promise<ForcedConfiguration> {
    const g = this.groupOf(group);
    if (g.engine.forceConfiguration === undefined) {
      throw new MembershipRefusedError(`the engine of ${group} cannot force a membership`);
    }
    if (g.repair !== undefined) {
      throw new MembershipRefusedError(
        `${group} is restoring its state from another replica: it cannot be the survivor`,
      );
    }
    const f = g.engine.forceConfiguration(voters);
    this.log.warn('membership forced without consensus (unsafe recovery): writes committed past this log are lost', {
      group,
      voters,
      forced: f.forced,
      before: f.before.voters,
      term: f.term,
      previousCommit: f.previousCommit,
      previousLastIndex: f.previousLastIndex,
    });
    g.engine.wake?.();
    this.noteWake(g);
    this.schedule();
    const deadline = this.opts.clock.now() + this.requestTimeoutMs;
    for (;;) {
      if (this.basic(g).role === 'leader') return f;
      if (!f.forced || g.confApplied >= f.lastIndex) {
        // Refused by the engine until the forced entries are applied and acknowledged: asked again each tick.
        g.engine.campaign();
        this.schedule();
      }
      if (this.opts.clock.now() >= deadline || !this.running) {
        throw new UnavailableError(
          `${group}: the forced membership is recorded but this node did not lead it within ${this.requestTimeoutMs} ms; it campaigns on its election timeout`,
        );
      }
      await new Promise<void>((r) => this.opts.clock.setTimeout(r, this.tickMs));
    }
  }

  /** What the leader of `g` knows for judging a membership change. */
  private membershipView(g: Group): MembershipView {
    const s = g.engine.status();
    const reachable = new Set<NodeId>([this.opts.id]);
    for (const [id, at] of g.heard) if (this.ticks - at <= this.quorumWindow) reachable.add(id);
    return {
      self: this.opts.id,
      confState: s.confState,
      reachable,
      match: g.engine.matchIndexes() ?? {},
      lastIndex: s.lastIndex,
      maxLag: 1000,
    };
  }

  /** Starts an election for `group` on this node now. */
  campaign(group: GroupId): void {
    const g = this.groupOf(group);
    g.engine.campaign();
    this.noteWake(g);
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
    const quiesce = this.quiesceAfterTicks > 0;
    this.ticks++;
    for (const g of this.groups.values()) {
      if (g.quiescent) {
        // Woken by something the host did not see (a membership change proposed on the engine).
        if (g.engine.isQuiescent?.()) continue;
        this.noteWake(g);
      }
      if (quiesce && g.role === 'leader' && this.maybeQuiesce(g)) continue;
      g.engine.tick();
      // When the engine's tick count became this value (a heartbeat carrying it leaves after): lease reads
      // measure the lease from it by the monotonic clock.
      g.ticks++;
      g.tickTimes[g.ticks % TICK_TIMES] = now;
      g.pending.expire(now);
      // Whoever waits on a group that lost its quorum hears so now, not at the request timeout.
      if (g.pending.size > 0) {
        const down = this.clusterDown(g);
        if (down) g.pending.failAll(down);
      }
    }
    this.receiver.expire(now);
    // Commit indexes reach the disk within a tick even when nothing else is written.
    this.flushDeferred();
    this.processReady();
    // The quiesce heartbeats, when no round sent them with the tick's other heartbeats.
    this.flushHeartbeats();
    this.tickTimer = this.opts.clock.setTimeout(() => this.onTick(), this.tickMs);
  }

  private receive(from: NodeId, frame: Uint8Array): void {
    if (!this.running) return;
    let decoded: ReturnType<typeof decodeRaftFrame>;
    try {
      decoded = decodeRaftFrame(frame, { maxBytes: this.opts.transport.maxFrameBytes });
    } catch (err) {
      this.log.warn('dropped an undecodable raft frame', { from, err: (err as Error).message });
      return;
    }
    this.counters.framesReceived++;
    if (decoded.kind === 'heartbeats') {
      this.receiveHeartbeats(from, decoded.heartbeats);
      return;
    }
    const batch = decoded.messages;
    let last: Group | undefined;
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
      g.heard.set(from, this.ticks);
      if (message.type === 'snap') {
        // Snapshots travel on their own stream (Protocols.snapshot); an image inside a Raft message
        // would reset the log without the state that goes with it.
        this.log.warn('raft snap message dropped: snapshots are streamed', { from, group });
        continue;
      }
      if (!this.stepEngine(g, from, message)) return;
      // Acknowledgements may commit while this node's own write is still in flight.
      if (g !== last) {
        if (last !== undefined) this.noteCommit(last);
        last = g;
      }
    }
    if (last !== undefined) this.noteCommit(last);
    this.schedule();
  }

  /** Steps `message` into `g`'s engine (waking it if quiescent); false when the host stopped on a storage failure. */
  private stepEngine(g: Group, from: NodeId, message: Message): boolean {
    try {
      g.engine.step(message);
    } catch (err) {
      // A corrupt log met while answering (an append read back from disk): never serve from it.
      if (err instanceof StorageError) {
        this.fatal('reading the log', err);
        return false;
      }
      this.log.warn('engine refused a message', {
        from,
        group: g.id,
        type: message.type,
        err: (err as Error).message,
      });
    }
    this.noteWake(g);
    return true;
  }

  /** Fans a peer's coalesced heartbeats and answers out to each group's engine, as the messages they stand for. */
  private receiveHeartbeats(from: NodeId, h: RaftHeartbeats): void {
    const to = this.opts.id;
    for (const hb of h.heartbeats) {
      const g = this.groups.get(hb.group);
      if (g === undefined) {
        this.log.debug('raft heartbeat for a group not hosted here', { from, group: hb.group });
        continue;
      }
      // A leader reported down gets no follower to quiesce: no later report would wake it.
      g.heard.set(from, this.ticks);
      const mayQuiesce = hb.quiesce && g.repair === undefined && !this.down.has(from);
      if (mayQuiesce && g.engine.quiesceFollower?.(from, hb.term, hb.commit)) {
        if (!g.quiescent) this.noteQuiesced(g);
        continue;
      }
      const m = heartbeatMessage(from, to, hb);
      if (!this.stepEngine(g, from, m)) return;
    }
    for (const r of h.responses) {
      const g = this.groups.get(r.group);
      if (g === undefined) continue;
      g.heard.set(from, this.ticks);
      const m = heartbeatResponseMessage(from, to, r);
      if (!this.stepEngine(g, from, m)) return;
    }
    this.schedule();
  }

  /** Dates the proposals of `g` that the engine now knows committed. */
  private noteCommit(g: Group): void {
    if (!g.pending.hasProposals) return;
    g.pending.reached('committed', g.engine.commitIndex?.() ?? g.engine.status().commit);
  }

  /**
   * Notes a commit index `g`'s leader owes followers (see {@link RaftHostOptions.commitNoticeDelayMs}):
   * unless an append carries it first, {@link flushCommitNotices} sends it once the delay is over.
   */
  private noteCommitNotice(g: Group): void {
    if (this.commitNoticeDelayMs === 0 || this.noticesDue.has(g)) return;
    const owed = g.engine.commitNoticeOwed?.() ?? 0;
    if (owed === 0) return;
    this.noticesDue.set(g, owed);
    this.noticeTimer ??= this.opts.clock.setTimeout(() => this.flushCommitNotices(), this.commitNoticeDelayMs);
  }

  /**
   * Notes that `g`'s ReadIndex round just started asked only a quorum of followers (see
   * {@link RaftHostOptions.readIndexHedgeMs}): unless it ends first, {@link hedgeReadRounds} asks the rest.
   */
  private noteHedge(g: Group): void {
    if (this.readIndexHedgeMs === 0) return;
    this.hedgesDue.add(g);
    this.hedgeTimer ??= this.opts.clock.setTimeout(() => this.hedgeReadRounds(), this.readIndexHedgeMs);
  }

  /** `g`'s round ended: nothing to hedge (the timer stops once no group waits). */
  private dropHedge(g: Group): void {
    if (!this.hedgesDue.delete(g) || this.hedgesDue.size > 0 || this.hedgeTimer === undefined) return;
    this.opts.clock.clearTimeout(this.hedgeTimer);
    this.hedgeTimer = undefined;
  }

  /** Asks every follower to confirm the rounds open for the hedge delay; waits again for the younger ones. */
  private hedgeReadRounds(): void {
    this.hedgeTimer = undefined;
    if (!this.running) return;
    const now = this.opts.clock.now();
    let next = Number.POSITIVE_INFINITY;
    let hedged = false;
    for (const g of this.hedgesDue) {
      // The oldest round in flight: a hedge asks for the newest, whose answer ends it too.
      const oldest = g.readRounds.values().next().value;
      if (this.groups.get(g.id) !== g || oldest === undefined) {
        this.hedgesDue.delete(g);
        continue;
      }
      const left = oldest.at + this.readIndexHedgeMs - now;
      if (left > 0) {
        next = Math.min(next, left);
        continue;
      }
      this.hedgesDue.delete(g);
      if (g.engine.hedgeReadIndex?.()) {
        this.counters.readHedges++;
        hedged = true;
      }
    }
    if (next !== Number.POSITIVE_INFINITY) {
      this.hedgeTimer = this.opts.clock.setTimeout(() => this.hedgeReadRounds(), next);
    }
    // The hedges' heartbeats leave with the next Ready round; a timer that only waited again needs none.
    if (hedged) this.schedule();
  }

  /** Sends each commit index still owed since {@link noteCommitNotice} noted it; notes newer ones for later. */
  private flushCommitNotices(): void {
    this.noticeTimer = undefined;
    if (!this.running) return;
    const due = this.noticesDue;
    this.noticesDue = new Map();
    for (const [g, upTo] of due) {
      if (this.groups.get(g.id) !== g) continue;
      g.engine.flushCommitNotice?.(upTo);
      // A commit that came after the noting gets a delay of its own (an append may still carry it).
      const owed = g.engine.commitNoticeOwed?.() ?? 0;
      if (owed > upTo) this.noticesDue.set(g, owed);
    }
    if (this.noticesDue.size > 0) {
      this.noticeTimer = this.opts.clock.setTimeout(() => this.flushCommitNotices(), this.commitNoticeDelayMs);
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

  /**
   * Stops the host because this node's storage failed (a write failed, or
   * a read met a corrupt entry or row): nothing it would say next can be
   * trusted. Each group it leads is first handed to its most caught-up voter,
   * so the group elects a new leader at once instead of after a timeout.
   * Then `onFatal` is called.
   */
  fail(what: string, err: Error): void {
    this.fatal(what, err);
  }

  private fatal(what: string, err: Error): void {
    if (!this.running) return;
    this.log.error('storage failed; the Raft host stops', { what, err: err.message });
    this.handOverLeadership();
    this.stop();
    this.onFatal?.(err);
  }

  /**
   * Best effort, without the store: asks each group's engine to transfer
   * leadership and sends only the resulting `timeoutNow` messages (they
   * depend on nothing unpersisted). A target not yet caught up never gets one;
   * the group then elects after its timeout as it would anyway.
   */
  private handOverLeadership(): void {
    const out: GroupMessage[] = [];
    for (const g of this.groups.values()) {
      const to = this.handoverTarget(g);
      if (to === undefined) continue;
      const { best, bestMatch, s } = to;
      try {
        g.engine.transferLeadership(best);
        // With no further Ready allowed (rounds in flight up to the cap), ready() would throw: then no
        // handover is sent.
        if (g.engine.hasReady()) {
          for (const message of g.engine.ready().messages) {
            if (message.type === 'timeoutNow') out.push({ group: g.id, message });
          }
        }
        this.log.warn('handing leadership over before stopping', {
          group: g.id,
          to: best,
          caughtUp: bestMatch === s.lastIndex,
        });
      } catch (e) {
        this.log.warn('leadership handover failed', { group: g.id, err: (e as Error).message });
      }
    }
    if (out.length > 0) this.send(out);
  }

  /** The voter `g`'s leadership should go to (the most caught up), when this node leads it. */
  private handoverTarget(
    g: Group,
  ): { best: NodeId; bestMatch: number; s: ReturnType<Group['engine']['status']> } | undefined {
    const match = g.engine.matchIndexes();
    if (match === undefined) return undefined;
    const s = g.engine.status();
    let best: NodeId | undefined;
    let bestMatch = -1;
    for (const id of s.confState.voters) {
      const m = match[id] ?? -1;
      if (id !== this.opts.id && m > bestMatch) {
        best = id;
        bestMatch = m;
      }
    }
    return best === undefined ? undefined : { best, bestMatch, s };
  }

  /** While running: hands `g`'s leadership to its most caught-up voter (the engine sends `timeoutNow` once it is caught up). */
  private handOver(g: Group): void {
    const to = this.handoverTarget(g);
    if (to === undefined) return;
    try {
      g.engine.transferLeadership(to.best);
      this.log.warn('handing leadership over: this replica cannot serve the group', { group: g.id, to: to.best });
    } catch (err) {
      this.log.warn('leadership handover failed', { group: g.id, err: (err as Error).message });
    }
    this.schedule();
  }

  private logMatches(g: Group, meta: SnapshotMeta): boolean {
    const reader = this.opts.store.group(g.id);
    if (meta.index > reader.lastIndex() || meta.index < reader.firstIndex() - 1) return false;
    try {
      return reader.term(meta.index) === meta.term;
    } catch {
      return false;
    }
  }

  /** Re-applies the log's committed entries `[lo, hi)` to a machine that restored an older snapshot; returns how many. */
  private replay(g: Group, lo: LogIndex, hi: LogIndex): number {
    const ents = this.opts.store.group(g.id).entries(lo, hi, Number.MAX_SAFE_INTEGER);
    const last = ents[ents.length - 1];
    if (last === undefined || ents[0]?.index !== lo || last.index !== hi - 1) {
      throw new StorageError(`group ${g.id}: the log lacks entries ${lo}..${hi - 1} to replay after a repair`);
    }
    const confState = g.engine.status().confState;
    try {
      g.sm.applyBatch(ents, confState);
    } catch (err) {
      if (!(err instanceof CorruptStateError)) throw err;
      this.repairs.begin(g, err);
      return 0;
    }
    g.applied = { index: last.index, term: last.term, confState };
    this.counters.entriesApplied += ents.length;
    return ents.length;
  }

  /**
   * Starts one ReadIndex round per group for the reads queued since the last Ready round (the reads of
   * one turn of the event loop, or of the turns the last Ready round took), whether or not earlier rounds
   * are in flight: rounds overlap, so a read waits for its own round trip only, not for the rest of the one
   * in flight before its own. (Waiting for it, which let more reads share a round, served fewer linearizable
   * HTTP gets at 64 connections in four alternated pairs out of four: tools/bench's README, thirty-first session.)
   */
  private startReadRounds(): void {
    const now = this.opts.clock.now();
    for (const g of this.groups.values()) {
      const batch = g.readBatch;
      if (batch === undefined) continue;
      g.readBatch = undefined;
      try {
        g.engine.readIndex(new TextEncoder().encode(batch.ctx));
        g.readRounds.set(batch.ctx, { at: now });
        this.counters.readRounds++;
        this.noteHedge(g);
      } catch (err) {
        g.pending.failRead(batch.ctx, err as Error);
      }
    }
  }

  /**
   * Runs rounds until no group has work: take one Ready of each group; send
   * what may leave before the write (see independentOfWrites in message.ts), apply the
   * committed entries; submit one write for all groups; then, once that write
   * and every earlier one are durable, send the rest and advance. Rounds
   * overlap: the next one is taken while earlier writes are in flight.
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

  /** Rounds taken whose completion (late messages, advance) has not run yet. */
  private roundsInFlight = 0;
  /** Completes rounds in the order taken: each link waits for the previous one and for its own write. */
  private roundsTail: Promise<void> = Promise.resolve();

  private async rounds(): Promise<void> {
    this.startReadRounds();
    // Bytes of committed entries applied in this turn: past `maxApplyBytes` the host yields to I/O
    // first (heartbeats, reads), as a follower catching up applies batch after batch.
    let appliedBytes = 0;
    const turnBytes = this.opts.maxApplyBytes === 0 ? Number.POSITIVE_INFINITY : (this.opts.maxApplyBytes ?? MIB);
    for (let rounds = 0; rounds < 16 && this.running && appliedBytes < turnBytes; rounds++) {
      const round = this.takeRound();
      if (round === undefined) return;
      this.counters.rounds++;
      if (this.roundsInFlight > 0) this.counters.roundsOverlapped++;
      const { work, batch, early } = round;
      if (early.length > 0) {
        this.send(early);
        if (batch.length > 0 || this.roundsInFlight > 0) this.counters.messagesSentBeforeWrite += early.length;
      }
      // A follower whose store writes on another thread hands over the entries of an append before it
      // applies those the append committed: its acknowledgement waits for that write, whose fsync then
      // runs while it applies rather than after. (A leader's rounds keep their writes for the end of the
      // turn, one message for all of them: its own write rarely decides a commit.) A store that syncs
      // on this thread writes after the apply (below).
      const offThread = this.opts.store.writesOffThread === true;
      let written: Promise<void> | undefined;
      if (offThread && batch.length > 0 && work.some(({ g, rd }) => followsWithApply(g, rd))) {
        written = this.startWrite(batch);
        this.opts.store.startWrites?.();
      }
      // The engine hands out for applying only entries this node holds durably (asyncStorageWrites),
      // so they apply, and their proposers hear back, while this round's write is in flight.
      let replies = false;
      let roundBytes = 0;
      for (const { g, rd } of work) {
        const pending = g.pending.hasProposals;
        this.applyReady(g, rd);
        if (rd.committedEntries.length === 0) continue;
        if (pending) replies = true;
        for (const e of rd.committedEntries) roundBytes += e.data.length;
      }
      appliedBytes += roundBytes;
      // A round is never held until the store's writer caught up with the machines' transactions: that
      // also held every later round's messages, a follower's acknowledgements included, so under a slow
      // disk clients' writes waited on apply transactions (e2e-transactions timed out in 3 of 10 runs
      // beside a disk-filling loop, in none of 9 without the wait). Applying pauses instead.
      this.noteApplied(roundBytes);
      if (batch.length === 0 && this.roundsInFlight === 0) {
        // Nothing to write and nothing earlier in flight: what it sends depends on nothing unwritten.
        this.completeRound(round);
        continue;
      }
      if (batch.length > 0 && written === undefined) {
        // Let the appends and the replies reach their sockets before a store that blocks the event
        // loop while it syncs does so. A store writing on another thread blocks nothing: its write
        // starts at once (waiting a turn would only let other work go first).
        if ((early.length > 0 || replies) && !offThread) {
          await new Promise<void>((resolve) => this.opts.clock.defer(resolve));
          if (!this.running) return;
        }
        written = this.startWrite(batch);
      }
      this.roundsInFlight++;
      this.roundsTail = this.roundsTail
        .then(() => written)
        .then(() => {
          this.roundsInFlight--;
          if (!this.running) return;
          this.completeRound(round);
          // Advancing may free a slot or let the leader commit: take the next round.
          this.schedule();
        })
        .catch((err: Error) => this.fatal('writing a Ready round', err));
    }
    // Still busy: yield to I/O and continue on the next turn.
    this.again = true;
  }

  /**
   * Submits a round's write (rounds submit in order: the store completes its writes in submission
   * order) and counts its time; the chain that completes the round handles its failure.
   */
  private startWrite(batch: GroupWrite[]): Promise<void> {
    const t = this.opts.clock.now();
    const written = this.durableWrite(batch).then(() => {
      this.counters.storeWriteMs += this.opts.clock.now() - t;
    });
    // Handled in the round's chain; this keeps an early failure from going unhandled meanwhile.
    written.catch(() => {});
    return written;
  }

  /** Bytes applied since the writer was last known caught up with the machines' transactions. */
  private unsettledApplyBytes = 0;
  /** Whether the groups' applying is paused until the writer catches up (see maxUnsettledApplyBytes). */
  private applyPaused = false;

  /**
   * Counts bytes applied; past `maxUnsettledApplyBytes`, asks the store whether its writer caught up
   * with the transactions queued so far and, when not, pauses every group's applying until it has.
   */
  private noteApplied(bytes: number): void {
    if (bytes === 0 || this.applyPaused) return;
    const budget = this.opts.maxUnsettledApplyBytes ?? 4 * MIB;
    this.unsettledApplyBytes += bytes;
    if (budget === 0 || this.unsettledApplyBytes < budget) return;
    const settled = this.opts.store.settled?.();
    this.unsettledApplyBytes = 0;
    if (settled === undefined) return;
    this.setApplyPaused(true);
    this.counters.applyPauses++;
    const resume = () => {
      this.setApplyPaused(false);
      if (this.running) this.schedule();
    };
    // A writer that failed fails the writes too (fatal there); applying resumes either way.
    settled.then(resume, resume);
  }

  private setApplyPaused(paused: boolean): void {
    this.applyPaused = paused;
    for (const g of this.groups.values()) g.engine.pauseApplying?.(paused);
  }

  /** Takes one Ready of each group with work and sorts its messages; undefined when no group has work. */
  private takeRound(): (Round & { early: GroupMessage[] }) | undefined {
    const work: { g: Group; rd: Ready }[] = [];
    const batch: GroupWrite[] = [];
    const early: GroupMessage[] = [];
    const late: GroupMessage[] = [];
    const termVote: Group[] = [];
    for (const g of this.groups.values()) {
      if (!g.engine.hasReady()) continue;
      const rd = g.engine.ready();
      work.push({ g, rd });
      this.noteCommitNotice(g);
      // Entries of a newer leader replacing this node's own: their proposers learn it now, not at their deadline.
      if (g.pending.hasProposals) for (const e of rd.entries) g.pending.replacedAt(e.index, e.term);
      const w: GroupWrite = { group: g.id };
      if (rd.entries.length > 0) {
        w.entries = rd.entries;
        // Their apply reads the rows they write: a machine on disk reads them ahead while they commit.
        g.sm.prefetch?.(rd.entries);
      }
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
      // The term and vote last handed to the store are durable once no write in flight changes them.
      // A Ready that changes them (a term/vote change always goes into this round's write) sends
      // nothing before that write, and neither does any later Ready of the group while it is in
      // flight: every message of them is sent under the new term or vote.
      const hs = rd.hardState;
      if (hs !== undefined && (hs.term !== g.term || hs.vote !== g.vote)) {
        g.term = hs.term;
        g.vote = hs.vote;
        g.termVoteWrites++;
        termVote.push(g);
      }
      const held = g.termVoteWrites > 0;
      for (const message of rd.messages) {
        const gm = { group: g.id, message };
        if (!held && independentOfWrites(message)) early.push(gm);
        else late.push(gm);
      }
    }
    if (work.length === 0) return undefined;
    return { work, batch, late, termVote, early };
  }

  /**
   * The round's write and every earlier one are durable: send what waited for them (votes,
   * acknowledgements and everything sent under a new term or vote) and advance its Readies.
   */
  private completeRound(round: Round): void {
    for (const w of round.batch) {
      const n = w.entries?.length ?? 0;
      this.counters.entriesPersisted += n;
      if (n === 0) continue;
      const g = this.groups.get(w.group);
      const first = (w.entries as Entry[])[0] as Entry;
      if (g?.pending.hasProposals) g.pending.reached('persisted', first.index + n - 1, first.index);
    }
    for (const g of round.termVote) g.termVoteWrites--;
    this.send(round.late);
    for (const { g } of round.work) {
      // Tells the engine the entries are durable: a leader counts itself toward the commit from here.
      g.engine.advance();
      this.noteCommit(g);
    }
    for (const { g } of round.work) this.compact(g);
    this.startReadRounds();
  }

  /** Runs {@link maybeCompact} for `g` unless one is under way. */
  private compact(g: Group): void {
    if (g.compacting) return;
    g.compacting = true;
    this.maybeCompact(g)
      .catch((err: Error) => this.fatal('compacting the log', err))
      .finally(() => {
        g.compacting = false;
      });
  }

  private send(messages: GroupMessage[]): void {
    const byPeer = new Map<NodeId, GroupMessage[]>();
    for (const gm of messages) {
      const m = gm.message;
      if (m.type === 'appResp' && m.reject) {
        const g = this.groups.get(gm.group);
        if (g !== undefined && obsoleteRejection(m, g.engine.commitIndex?.() ?? g.engine.status().commit)) {
          this.log.debug('dropped an append rejection made before a snapshot install', {
            group: gm.group,
            to: m.to,
            hint: m.rejectHint,
          });
          continue;
        }
      }
      if (m.type === 'snap') {
        // The engine asks for a snapshot: the host streams the machine's state instead of the message.
        this.streamSnapshot(gm.group, m.to, m.term);
        continue;
      }
      if (this.coalesce && m.type === 'heartbeat') {
        this.queueHeartbeat(m.to, gm.group, {
          group: gm.group,
          term: m.term,
          commit: m.commit,
          tick: m.index,
          context: m.context,
          quiesce: false,
        });
        continue;
      }
      if (this.coalesce && m.type === 'heartbeatResp') {
        this.queueHeartbeatResponse(m.to, gm.group, {
          group: gm.group,
          term: m.term,
          tick: m.index,
          reject: m.reject,
          rejectHint: m.rejectHint,
          context: m.context,
        });
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
    this.flushHeartbeats();
  }

  /**
   * The frames carrying `list` to one peer: as few as fit the frame limit, packed by their estimated
   * size, so that a round of many appends (a follower catching up) is not first encoded whole only to
   * be refused as too large.
   */
  private frames(list: GroupMessage[]): Uint8Array[] {
    const maxBytes = this.opts.transport.maxFrameBytes;
    const out: Uint8Array[] = [];
    for (const pack of packBySize(list, maxBytes)) {
      try {
        out.push(encodeRaftBatch(pack, { maxBytes }));
        continue;
      } catch {
        // The estimate fell short, or one message is over the limit: one frame per message.
      }
      for (const gm of pack) {
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
    }
    return out;
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
    // A leader that finds a follower's storage replaced probes it at once: that Ready carries messages.
    // (Leaders only, and once per round: reading the status costs a few allocations.)
    if (g.role === 'leader' && rd.messages.length > 0) this.logLostEntries(g);
    if (rd.snapshot) {
      // Only a streamed snapshot the machine already committed reaches the engine (see SnapshotReceiver).
      const at = g.sm.applied();
      if (at.index < rd.snapshot.meta.index) {
        throw new Error(
          `invariant: group ${g.id} installed a snapshot at ${rd.snapshot.meta.index} but its machine is at ${at.index}`,
        );
      }
      if (at.index > g.applied.index) g.applied = at;
      // The engine restored its membership from the snapshot: later changes are applied to it anew.
      g.confApplied = rd.snapshot.meta.index;
      g.snapshotIndex = Math.max(g.snapshotIndex, rd.snapshot.meta.index);
    }
    let ents = rd.committedEntries;
    if (this.faults.applyBeforeCommit) {
      // Test-only fault: the appended entries that extend what would be applied go to the machine now.
      let n = Math.max(g.applied.index, ents[ents.length - 1]?.index ?? 0) + 1;
      const early: Entry[] = [];
      for (const e of rd.entries) {
        if (e.index !== n) continue;
        early.push(e);
        n++;
      }
      ents = [...ents, ...early];
    }
    this.counters.entriesApplied += applyEntries(
      g,
      ents,
      this.log,
      (err) => this.repairs.begin(g, err),
      (cc) => this.onConfChange?.(g.id, cc),
    );
    for (const rs of rd.readStates) {
      const round = new TextDecoder().decode(rs.context);
      if (g.readRounds.delete(round)) g.pending.readConfirmed(round, rs.index);
    }
    if (rd.readStates.length > 0 && g.readRounds.size === 0) this.dropHedge(g);
    g.pending.releaseReads(g.applied.index);
  }

  /** Logs what the engine found since the last call: followers that lost entries they had acknowledged. */
  private logLostEntries(g: Group): void {
    const s = g.engine.status();
    const count = s.lostEntries ?? 0;
    if (count <= g.lostEntriesLogged) return;
    this.counters.followersLostEntries += count - g.lostEntriesLogged;
    g.lostEntriesLogged = count;
    const last = s.lastLostEntries;
    if (last === undefined) return;
    this.log.warn(
      `follower ${last.id} lost acknowledged entries (match ${last.match}, now ${last.hint}): its storage was replaced`,
      { group: g.id, follower: last.id, match: last.match, now: last.hint, times: count },
    );
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
    const compactTo = Math.max(this.compactionPoint(g, at.index, reader.firstIndex()), reader.firstIndex() - 1);
    await this.opts.store.saveSnapshot(g.id, { meta: at, data: EMPTY }, compactTo);
    g.snapshotIndex = at.index;
    this.counters.snapshotsTaken++;
    this.log.info('snapshot taken: log compacted behind a snapshot marker', {
      group: g.id,
      index: at.index,
      compactTo,
    });
  }

  /**
   * How far the log of `g` may be compacted for a marker at `at`: the margin behind it, but (on the leader)
   * never past what a follower that just installed a snapshot still needs from the log to catch up, nor past
   * the index of a snapshot being sent (the follower continues from the log after it). Without that, a follower whose catch-up takes
   * longer than the log takes to grow by `snapshotEntries` (a large state under steady writes) is sent
   * another snapshot each time it installs one and never catches up. The hold is bounded: once the log
   * holds more than `snapshotBytes`, it is compacted as usual and a laggard gets a snapshot.
   */
  private compactionPoint(g: Group, at: LogIndex, firstIndex: LogIndex): LogIndex {
    const usual = at - this.margin;
    let keep = usual;
    const sending = this.sender.sendingIndex(g.id);
    if (sending !== undefined) keep = Math.min(keep, sending);
    const matches = g.engine.matchIndexes() ?? {};
    const now = this.opts.clock.now();
    for (const [key, hold] of this.catchingUp) {
      if (hold.group !== g.id) continue;
      const tracked = matches[hold.peer];
      // Until the follower's first answer after the install the leader's match for it is still the old one
      // (nothing, for a wiped follower): the snapshot's index stands for it meanwhile.
      const match = tracked === undefined ? undefined : Math.max(tracked, hold.index);
      // Caught up, gone (no longer tracked, or behind the log already: it needs a snapshot anyway), or too slow.
      if (match === undefined || match >= usual || match < firstIndex - 1 || now > hold.until) {
        this.catchingUp.delete(key);
        continue;
      }
      keep = Math.min(keep, match);
    }
    if (keep < usual && (this.sized?.stats(g.id).bytes ?? 0) > this.snapshotBytes) return usual;
    return keep;
  }

  /** The engine asked for a snapshot to `peer`: stream a consistent view of the machine to it. */
  private streamSnapshot(group: GroupId, peer: NodeId, term: Term): void {
    const g = this.groups.get(group);
    // The engine's live role: it may have become leader in the Ready being sent.
    if (g === undefined || g.engine.status().role !== 'leader') return;
    const settled = this.opts.store.settled?.();
    if (settled === undefined) {
      this.sender.start(group, peer, term, () => g.sm.openSnapshot(), g.sm.applied().index);
      return;
    }
    // A view reads the file, so opening one waits for the writer to commit what was applied: here, not
    // blocking the event loop (behind a large job, a log compaction, that wait outlasted an election timeout).
    const key = `${group}\u0000${peer}`;
    if (this.opening.has(key)) return;
    this.opening.add(key);
    settled
      .catch(() => {
        // A failed writer stops the host (see rounds()); the view would fail to open anyway.
      })
      .then(() => {
        this.opening.delete(key);
        const now = g.engine.status();
        if (!this.running || now.role !== 'leader' || now.term !== term) return;
        this.sender.start(group, peer, term, () => g.sm.openSnapshot(), g.sm.applied().index);
      });
  }

  private snapshotSent(group: GroupId, peer: NodeId, ok: boolean, index: LogIndex): void {
    if (ok) {
      this.counters.snapshotsSent++;
      // The follower now catches up from the log after the snapshot: compaction leaves it that (see compactionPoint).
      this.catchingUp.set(`${group}\u0000${peer}`, {
        group,
        peer,
        index,
        until: this.opts.clock.now() + (this.opts.snapshotTimeoutMs ?? 600_000),
      });
    }
    const g = this.groups.get(group);
    if (g === undefined || !this.running) return;
    g.engine.reportSnapshot(peer, ok, ok ? index : undefined);
    this.schedule();
  }

  private receivingGroup(id: GroupId): ReceivingGroup | undefined {
    const g = this.groups.get(id);
    if (g === undefined || !this.running) return undefined;
    return {
      machine: g.sm,
      term: () => g.engine.status().term,
      // A repairing machine holds nothing worth keeping: every snapshot replaces it.
      appliedIndex: () => (g.repair !== undefined ? -1 : g.applied.index),
      refuses: (meta, from) => this.repairs.refuses(g, meta, from),
      installed: (leader, term, meta) => {
        if (g.repair !== undefined) {
          this.counters.snapshotsRestored++;
          const matches = this.logMatches(g, meta);
          this.repairs.finish(g, leader, meta);
          // The log holds the snapshot's entry: the engine has nothing to reset; the machine catches up from the log.
          if (matches) return;
          // Else the leader sent it because this replica's log is behind: the engine resets its log to it, as below.
        }
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
