import {
  CodecError,
  type ConfChange,
  type ConfState,
  ConfigError,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type NodeId,
  type RaftLogReader,
  type Term,
} from '@cohort/core';
import { encodeConfChange } from './confchange/codec.js';
import { type ForcedConfiguration, forceConfiguration } from './force-config.js';
import { type LeaseRead, leaseRead } from './lease.js';
import { applyConfChange } from './membership.js';
import { independentOfWrites, isKnownMessageType, newMessage } from './message.js';
import { type QuiesceHeartbeat, quiesceFollower, quiesceLeader, wake } from './quiesce.js';
import { Raft } from './raft.js';
import { type BasicStatus, type Status, statusOf } from './status.js';
import type { RaftOptions, Ready, SoftState } from './types.js';

/** What a handed-out `Ready` covered, so `advance()` can acknowledge exactly that. */
interface InFlightReady {
  /** Carried no entries, snapshot or committed entries: nothing for `advance()` to acknowledge, not counted by the cap. */
  light?: boolean;
  lastEntry?: { index: LogIndex; term: Term };
  snapshotIndex?: LogIndex;
  lastCommitted?: LogIndex;
  committedEntries: Entry[];
}

/**
 * The engine's public face (etcd's RawNode). Drive it with `tick()`, `step()`
 * and the propose calls; whenever `hasReady()`, take `ready()`, persist its
 * `hardState`/`entries`/`snapshot` (durably if `mustSync`), send its
 * `messages`, apply its `committedEntries`, then call `advance()`.
 *
 * By default no other `ready()` may be taken before `advance()`. With
 * `maxOutstandingReadies` above 1 (and `asyncStorageWrites`), up to that many
 * Readies may be out at once: each carries only entries, committed entries and
 * snapshot no earlier one carried, and its own hard state; the host persists
 * them in the order taken, and each `advance()` acknowledges the oldest one.
 * A Ready carrying a snapshot is the last one out until it is acknowledged.
 * While the cap is reached, a Ready may still be taken for the messages that
 * depend on nothing unpersisted but the term and vote (a leader's appends and
 * heartbeats, heartbeat answers), so a group stays alive while its writes
 * stall; it carries nothing else and is acknowledged in turn like any other.
 */
export class RawNode {
  private readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** Readies handed out and not yet acknowledged, oldest first. */
  private readonly outstanding: InFlightReady[] = [];
  /** While set, Readies carry no committed entries (see {@link pauseApplying}). */
  private applyPaused = false;

  /** Restarts (or starts) a node from what `storage` holds; the membership comes from its conf state. */
  constructor(options: RaftOptions, storage: RaftLogReader) {
    this.raft = new Raft(options, storage);
    this.prevSoft = this.softState();
    this.prevHard = this.raft.hardState();
  }

  /**
   * Starts a brand-new group member with `peers` as the initial voters: the
   * membership is written as committed conf-change entries in the first
   * `Ready` (persist them like any entries; applying them is idempotent).
   * Every initial member must bootstrap with the same `peers`.
   */
  static bootstrap(options: RaftOptions, storage: RaftLogReader, peers: NodeId[]): RawNode {
    if (peers.length === 0) throw new ConfigError('bootstrap needs at least one peer');
    if (new Set(peers).size !== peers.length) throw new ConfigError(`bootstrap peers contain duplicates: ${peers}`);
    if (storage.lastIndex() !== 0 || storage.initialState().hardState.term !== 0) {
      throw new ConfigError('bootstrap needs empty storage; restart an existing node with new RawNode() instead');
    }
    const rn = new RawNode(options, storage);
    const r = rn.raft;
    r.becomeFollower(1, '');
    const ents: Entry[] = peers.map((id, i) => ({
      term: 1,
      index: i + 1,
      type: 'confChange',
      data: encodeConfChange({
        transition: 'auto',
        changes: [{ type: 'addVoter', nodeId: id }],
        context: new Uint8Array(0),
      }),
    }));
    r.raftLog.append(ents);
    // The bootstrap entries are committed by fiat: every member starts with them.
    r.raftLog.committed = ents.length;
    for (const id of peers)
      applyConfChange(r, {
        transition: 'auto',
        changes: [{ type: 'addVoter', nodeId: id }],
        context: new Uint8Array(0),
      });
    rn.prevHard = { term: 0, vote: '', commit: 0 };
    return rn;
  }

  /** Advances logical time by one tick (elections, heartbeats, check-quorum). */
  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (pre-vote first when enabled). */
  campaign(): void {
    this.raft.hup('election');
  }

  /**
   * Proposes `data` for the log. Throws `ProposalDroppedError` when it cannot be accepted now.
   * `data` becomes part of the log: do not modify it afterwards (`Ready` entries share it, and a
   * store may keep them without a copy).
   */
  propose(data: Uint8Array): void {
    this.stepLocal(
      newMessage({ type: 'prop', from: this.raft.id, entries: [{ term: 0, index: 0, type: 'normal', data }] }),
    );
  }

  /** Proposes a membership change (one at a time). Throws `ProposalDroppedError` when refused. */
  proposeConfChange(cc: ConfChange): void {
    const data = encodeConfChange(cc);
    this.stepLocal(
      newMessage({ type: 'prop', from: this.raft.id, entries: [{ term: 0, index: 0, type: 'confChange', data }] }),
    );
  }

  /**
   * Requests a linearizable read: once a `ReadState` with this `context`
   * appears in a `Ready`, reads may be served when its index is applied.
   * Throws `ProposalDroppedError` when no leader is known.
   */
  readIndex(context: Uint8Array): void {
    this.stepLocal(newMessage({ type: 'readIndex', from: this.raft.id, context }));
  }

  /** Asks the leader to hand leadership to `to` (refused for learners; abandoned after an election timeout). */
  transferLeadership(to: NodeId): void {
    this.raft.step(newMessage({ type: 'transferLeader', from: to, to: this.raft.id }));
  }

  private stepLocal(m: Message): void {
    const err = this.raft.step(m);
    if (err) throw err;
  }

  /**
   * Handles a message from a peer. Throws `CodecError` for a malformed one
   * (drop the connection it came on); the engine's state is then unchanged.
   */
  step(m: Message): void {
    validateMessage(m, this.raft.id);
    // A forwarded proposal that cannot be accepted is dropped: the proposer retries on its timeout.
    this.raft.step(m);
  }

  /** Applies a committed conf change (call it when applying a `confChange` entry); returns the new membership. */
  applyConfChange(cc: ConfChange): ConfState {
    return applyConfChange(this.raft, cc);
  }

  /**
   * Unsafe recovery of a group that lost its quorum for good: rewrites the membership to `voters`
   * (this node among them) without consensus, taking this node's whole log as committed (see
   * force-config.ts). The next `Ready` carries the forced entries and the new hard state; once they
   * are persisted and applied, `campaign()` makes this node lead the forced membership. Entries the
   * lost replicas committed past this node's log are gone. Throws `ConfigError` for a bad voter list,
   * and refuses while a received snapshot awaits persisting. It may be called while a `Ready` awaits
   * `advance()` once that Ready's committed entries are applied (RaftHost applies them before its
   * write completes): the forced entries come in the next `Ready`.
   */
  forceConfiguration(voters: NodeId[]): ForcedConfiguration {
    if (this.raft.raftLog.unstable.snapshot) {
      throw new ConfigError(
        'a received snapshot is not persisted yet: process the next Ready, then force the configuration',
      );
    }
    // The tracker holds the membership changes applied so far, the outstanding Readies' included.
    const applied = this.applying();
    return forceConfiguration(this.raft, voters, applied);
  }

  /** Tells the leader that `id` could not be reached, so it stops pipelining to it. */
  reportUnreachable(id: NodeId): void {
    const pr = this.raft.trk.progress.get(id);
    if (this.raft.state === 'leader' && pr?.state === 'replicate') pr.becomeProbe();
  }

  /**
   * Tells the leader whether sending a snapshot to `id` succeeded; `index`: the index of the snapshot the
   * follower installed, when the application sent a later one than the engine asked for (a state it streams
   * as of its applied index): probing resumes after it, not after the older snapshot, whose entries the log
   * may no longer hold.
   */
  reportSnapshot(id: NodeId, ok: boolean, index?: LogIndex): void {
    const pr = this.raft.trk.progress.get(id);
    if (this.raft.state !== 'leader' || pr?.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    else if (index !== undefined && index > pr.pendingSnapshot && index <= this.raft.raftLog.lastIndex()) {
      pr.pendingSnapshot = index;
    }
    pr.becomeProbe();
    // Wait for the next heartbeat response before probing again.
    pr.msgAppFlowPaused = true;
  }

  private softState(): SoftState {
    return { lead: this.raft.lead, role: this.raft.state };
  }

  private committedLimit(): LogIndex {
    const log = this.raft.raftLog;
    // With asynchronous writes, apply only what is durable locally too.
    return this.raft.opts.asyncStorageWrites ? log.stableIndex() : log.lastIndex();
  }

  /** Whether the role or leader differs from what the last `Ready` reported. */
  private softChanged(): boolean {
    const r = this.raft;
    return r.lead !== this.prevSoft.lead || r.state !== this.prevSoft.role;
  }

  /** Whether term, vote or commit differ from what the last `Ready` reported. */
  private hardChanged(): boolean {
    const r = this.raft;
    const p = this.prevHard;
    return r.term !== p.term || r.vote !== p.vote || r.raftLog.committed !== p.commit;
  }

  /** The highest index handed out for applying: the applied index, or past it the last outstanding Ready's. */
  private applying(): LogIndex {
    const applied = this.raft.raftLog.applied;
    for (let i = this.outstanding.length - 1; i >= 0; i--) {
      const c = this.outstanding[i]?.lastCommitted;
      if (c !== undefined) return Math.max(applied, c);
    }
    return applied;
  }

  /**
   * Why no further full `Ready` may be taken now, or undefined when one may: the cap of outstanding
   * Readies is reached, or an outstanding one carries a snapshot (everything after it waits until the
   * snapshot is acknowledged: the simplest rule that keeps the log reset by it in one piece).
   */
  private blocked(): { why: string; light: boolean } | undefined {
    const n = this.outstanding.length;
    if (n === 0) return undefined;
    if (this.outstanding.some((f) => f.snapshotIndex !== undefined)) {
      return {
        why: 'ready() called while a Ready carrying a snapshot awaits advance(): advance it first',
        light: false,
      };
    }
    const max = this.raft.opts.maxOutstandingReadies;
    if (max === 1)
      return { why: 'ready() called again before advance(): advance the previous Ready first', light: false };
    let full = 0;
    for (const f of this.outstanding) if (!f.light) full++;
    if (full < max) return undefined;
    return {
      why: `ready() called with ${full} Readies awaiting advance() (maxOutstandingReadies) and nothing that may leave before them: advance the oldest first`,
      light: true,
    };
  }

  /**
   * Whether a light Ready has something to carry: messages that may leave before the outstanding
   * writes (§10.2.1: a leader's appends; heartbeats and their answers vouch for the term only), which
   * they may only while the term and vote are those already handed to the host.
   */
  private hasLightWork(): boolean {
    const r = this.raft;
    if (r.term !== this.prevHard.term || r.vote !== this.prevHard.vote) return false;
    return r.msgs.some(independentOfWrites);
  }

  /**
   * Whether there is work for the host (false while no further `Ready` may be taken: see
   * `maxOutstandingReadies`). Cheap enough to call on every turn: it compares fields and builds nothing.
   */
  hasReady(): boolean {
    const b = this.blocked();
    if (b !== undefined) {
      if (!b.light) return false;
      this.raft.flushBroadcast();
      return this.hasLightWork();
    }
    const r = this.raft;
    r.flushBroadcast();
    if (this.softChanged() || this.hardChanged()) return true;
    const u = r.raftLog.unstable;
    if (u.nextSnapshot() || u.hasNextEntries()) return true;
    if (r.msgs.length > 0 || r.readStates.length > 0) return true;
    return !this.applyPaused && Math.min(r.raftLog.committed, this.committedLimit()) > this.applying();
  }

  /** Takes the pending work. Call `advance()` once it is persisted, sent and applied. */
  ready(): Ready {
    const b = this.blocked();
    if (b !== undefined) {
      if (b.light) {
        this.raft.flushBroadcast();
        if (this.hasLightWork()) return this.lightReady();
      }
      throw new Error(b.why);
    }
    const r = this.raft;
    r.flushBroadcast();
    const u = r.raftLog.unstable;
    // A copy: the unstable log grows in place while the host persists this batch. Only entries no
    // outstanding Ready carries: those are being written already.
    const entries = u.nextEntries();
    const snapshot = u.nextSnapshot();
    // Bounded in bytes (at least one entry): a follower catching up applies its backlog in batches.
    const committedEntries = this.applyPaused
      ? []
      : r.raftLog.nextCommittedEntries(
          this.committedLimit(),
          r.opts.maxCommittedSizePerReady || Number.MAX_SAFE_INTEGER,
          this.applying(),
        );
    const rd: Ready = {
      entries,
      committedEntries,
      messages: r.msgs,
      readStates: r.readStates,
      mustSync:
        entries.length > 0 || snapshot !== undefined || r.term !== this.prevHard.term || r.vote !== this.prevHard.vote,
    };
    if (this.softChanged()) {
      const soft = this.softState();
      rd.softState = soft;
      this.prevSoft = soft;
    }
    if (this.hardChanged()) {
      const hs = r.hardState();
      rd.hardState = hs;
      this.prevHard = hs;
    }
    const f: InFlightReady = { committedEntries };
    if (snapshot) {
      rd.snapshot = snapshot;
      f.snapshotIndex = snapshot.meta.index;
    }
    u.acceptInProgress();
    r.msgs = [];
    r.readStates = [];
    const last = entries[entries.length - 1];
    if (last) f.lastEntry = { index: last.index, term: last.term };
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (lastCommitted) f.lastCommitted = lastCommitted.index;
    if (!last && !lastCommitted && !snapshot) f.light = true;
    this.outstanding.push(f);
    return rd;
  }

  /** A Ready of only the messages that may leave before the outstanding writes; the rest stay queued. */
  private lightReady(): Ready {
    const r = this.raft;
    const messages: Message[] = [];
    const rest: Message[] = [];
    for (const m of r.msgs) (independentOfWrites(m) ? messages : rest).push(m);
    r.msgs = rest;
    this.outstanding.push({ light: true, committedEntries: [] });
    return { entries: [], committedEntries: [], messages, readStates: [], mustSync: false };
  }

  /**
   * Acknowledges the oldest outstanding `Ready`: its entries and snapshot are durable and its
   * committed entries applied (and so are those of every Ready taken before it).
   */
  advance(): void {
    const f = this.outstanding.shift();
    if (!f) return;
    const r = this.raft;
    if (f.snapshotIndex !== undefined) {
      r.raftLog.unstable.stableSnapTo(f.snapshotIndex);
      // The application installed the snapshot's state.
      if (f.snapshotIndex > r.raftLog.applied) r.raftLog.applied = f.snapshotIndex;
    }
    if (f.lastEntry) r.raftLog.unstable.stableTo(f.lastEntry.index, f.lastEntry.term);
    if (f.lastCommitted !== undefined) {
      r.raftLog.appliedTo(f.lastCommitted);
      r.reduceUncommittedSize(f.committedEntries);
    }
    if (r.opts.asyncStorageWrites) r.onPersisted(r.raftLog.stableIndex());
    r.onApplied();
  }

  /**
   * On an idle leader (see quiesce.ts): stops the group's clock and returns what the host tells
   * every follower in a quiesce heartbeat; undefined (and nothing changes) when the group is not
   * idle. Followers in `down` (the liveness source says so) need not hold the whole log.
   */
  quiesce(down: (id: NodeId) => boolean = () => false): QuiesceHeartbeat | undefined {
    if (this.outstanding.length > 0) return undefined;
    return quiesceLeader(this.raft, down);
  }

  /**
   * A quiesce heartbeat from `from` for (`term`, `commit`): true when this follower quiesced (no
   * answer is due); false when it does not hold exactly that, and the host steps it as a heartbeat.
   */
  quiesceFollower(from: NodeId, term: Term, commit: LogIndex): boolean {
    if (this.outstanding.length > 0) return false;
    return quiesceFollower(this.raft, from, term, commit);
  }

  /** Wakes a quiescent engine; returns whether it was quiescent. Steps, ticks and campaigns wake it too. */
  wake(): boolean {
    return wake(this.raft);
  }

  /** Whether the host stopped ticking this group (see {@link quiesce}). */
  isQuiescent(): boolean {
    return this.raft.quiescent;
  }

  /** The lease a read may be served under now, without a ReadIndex round; undefined when none holds (lease.ts). */
  leaseRead(): LeaseRead | undefined {
    return leaseRead(this.raft);
  }

  /**
   * Holds back committed entries (true) or hands them out again (false). Everything else goes on
   * while paused: entries are appended, acknowledged and committed, messages and snapshots flow; only
   * applying waits. An application whose applied state is written behind the engine (another thread)
   * pauses while that backlog is too large, so a follower catching up cannot outrun its disk and
   * buffer the difference in memory, without holding back its acknowledgements.
   */
  pauseApplying(paused: boolean): void {
    this.applyPaused = paused;
  }

  /** The highest log index known committed (cheap: no status snapshot). */
  commitIndex(): LogIndex {
    return this.raft.raftLog.committed;
  }

  /**
   * With `deferCommitNotice`: on a leader, the commit index some follower that keeps up has not been
   * told yet (0 when none). The host calls {@link flushCommitNotice} with it after a short delay.
   */
  commitNoticeOwed(): LogIndex {
    return this.raft.commitNoticeOwed();
  }

  /**
   * Tells commit index `upTo` (capped at the current one) to every follower that keeps up and was not
   * sent it yet, by an append (empty unless entries are due); the messages come in the next Ready.
   */
  flushCommitNotice(upTo: LogIndex): void {
    this.raft.flushCommitNotice(upTo);
  }

  /**
   * With `readIndexFanout: 'quorum'`: asks every follower that has not confirmed the newest pending
   * ReadIndex round yet to confirm it (the ones first asked were slow to answer); the heartbeats come in
   * the next Ready. False when no round is pending here (the round ended, or this node does not lead).
   */
  hedgeReadIndex(): boolean {
    return this.raft.hedgeReadIndex();
  }

  /** A snapshot of the engine's state, for introspection, tests and the simulator. */
  status(): Status {
    return statusOf(this.raft);
  }

  /** Term, leader, role and last index: what a request checks, without the copies {@link status} makes. */
  basicStatus(): BasicStatus {
    const r = this.raft;
    return { term: r.term, lead: r.lead, role: r.state, lastIndex: r.raftLog.lastIndex() };
  }
}

/** Boundary check of a peer's message: structure only, the engine asserts the rest. */
function validateMessage(m: Message, self: NodeId): void {
  if (typeof m !== 'object' || m === null) throw new CodecError('message is not an object');
  if (!isKnownMessageType(m.type)) throw new CodecError(`unknown message type ${String(m.type)}`);
  if (typeof m.from !== 'string' || m.from === '') throw new CodecError(`${m.type} message has no sender`);
  if (m.to !== '' && m.to !== self) throw new CodecError(`${m.type} message for ${m.to} delivered to ${self}`);
  for (const k of ['term', 'logTerm', 'index', 'commit', 'rejectHint', 'rejectTerm', 'snapOffset'] as const) {
    const v = m[k];
    if (!Number.isSafeInteger(v) || v < 0)
      throw new CodecError(`${m.type} message field ${k} is ${v}, not a non-negative integer`);
  }
  if (!Array.isArray(m.entries)) throw new CodecError(`${m.type} message entries is not a list`);
  if (m.type === 'app') {
    let prev = m.index;
    let prevTerm = m.logTerm;
    for (const e of m.entries) {
      if (e.index !== prev + 1)
        throw new CodecError(`app message entries are not contiguous at ${e.index} (after ${prev})`);
      if (e.term < prevTerm || e.term > m.term) {
        throw new CodecError(
          `app message entry ${e.index} has term ${e.term} out of order (previous ${prevTerm}, message ${m.term})`,
        );
      }
      prev = e.index;
      prevTerm = e.term;
    }
    if (m.term === 0) throw new CodecError('app message carries no term');
  }
  if (m.type === 'snap' && !m.snapshot) throw new CodecError('snap message carries no snapshot');
}
