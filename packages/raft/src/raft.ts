import {
  CompactedError,
  ConfigError,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type MessageType,
  type NodeId,
  type ProposalDroppedError,
  type RaftLogReader,
  type Term,
} from '@cohort/core';
import { encodeConfChange } from './confchange/codec.js';
import { restoreConfig } from './confchange/restore.js';
import { RaftLog, entrySize } from './log/raft-log.js';
import { applyChangeResult } from './membership.js';
import { NONE, TRANSFER_CONTEXT, isTransferContext, newMessage, voteRespType } from './message.js';
import { type ResolvedOptions, resolveOptions } from './options.js';
import { wake } from './quiesce.js';
import { ReadOnly } from './read-only.js';
import type { LostEntries } from './status.js';
import { stepCandidate, stepFollower } from './step-follower.js';
import { releasePendingReadIndexMessages, stepLeader } from './step-leader.js';
import { ProgressTracker } from './tracker/progress-tracker.js';
import type { Progress } from './tracker/progress.js';
import type { RaftOptions, ReadState, StateRole } from './types.js';

/** The kind of campaign: pre-vote first (§9.6), a real election, or one forced by leadership transfer. */
type CampaignType = 'preElection' | 'election' | 'transfer';

/** A snapshot being reassembled from `snap` chunks. */
export interface SnapshotReceipt {
  from: NodeId;
  term: Term;
  index: LogIndex;
  snapTerm: Term;
  chunks: Uint8Array[];
  received: number;
}

/**
 * The Raft state machine of one node (internal to the package: its members
 * are open to the role step functions in `step-leader.ts`, `step-follower.ts`
 * and `membership.ts`; the public surface is `RawNode`). Pure: every input arrives through
 * `step`/`tick`/propose calls and every effect is queued in `msgs` or in the
 * log for the host to collect via `RawNode.ready()`.
 */
export class Raft {
  readonly id: NodeId;
  readonly opts: ResolvedOptions;
  term: Term = 0;
  vote: NodeId = NONE;
  readonly raftLog: RaftLog;
  trk = new ProgressTracker();
  state: StateRole = 'follower';
  isLearner = false;
  lead: NodeId = NONE;
  leadTransferee: NodeId = NONE;
  /** Index of the latest conf change the leader appended; a new one waits until it is applied. */
  pendingConfIndex: LogIndex = 0;
  uncommittedSize = 0;
  readonly readOnly = new ReadOnly();
  readStates: ReadState[] = [];
  msgs: Message[] = [];
  pendingReadIndexMessages: Message[] = [];
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /** Ticks since this node started, plus one (0 stays free to mean "none"); heartbeats carry it for the lease. */
  ticks = 1;
  /** Set once this leader sent `timeoutNow`: its transferee may campaign past every lease, so no lease reads. */
  leaseRevoked = false;
  /**
   * With lease reads, votes are refused while `ticks` is below this: an election timeout after the last
   * heartbeat answered, and after a restart (the node remembers no lease it backed before the crash).
   */
  voteQuietUntil = 0;
  receipt: SnapshotReceipt | undefined;
  /** How many times, as leader, this node found a follower had lost entries it acknowledged (see status). */
  lostEntries = 0;
  /** The latest such finding. */
  lastLostEntries: LostEntries | undefined;
  pendingBroadcast: 'none' | 'entries' | 'commit' = 'none';
  /** The host stopped ticking this idle group (quiesce.ts); any step, tick or campaign wakes it. */
  quiescent = false;
  /** Heartbeat acknowledgements sent at or before this tick never back the lease (set on waking, quiesce.ts). */
  leaseFloorTick = 0;
  /** Answers to pending ReadIndex rounds received as leader, counted to order followers by how recently they answered. */
  readAnswers = 0;

  constructor(options: RaftOptions, storage: RaftLogReader) {
    this.opts = resolveOptions(options);
    this.id = options.id;
    this.raftLog = new RaftLog(storage);
    const { hardState, confState } = storage.initialState();
    applyChangeResult(
      this,
      restoreConfig(confState, this.raftLog.lastIndex(), this.opts.maxInflightMsgs, this.opts.maxInflightBytes),
    );
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState);
    // A node that never had a term never answered a heartbeat, so it backs no lease.
    if (this.opts.readOnlyOption !== 'safe' && hardState.term > 0) this.voteQuietUntil = this.opts.electionTick + 1;
    if (this.opts.applied > 0) this.raftLog.appliedTo(Math.min(this.opts.applied, this.raftLog.committed));
    this.becomeFollower(this.term, NONE);
  }

  loadState(hs: HardState): void {
    if (hs.commit > this.raftLog.lastIndex()) {
      throw new ConfigError(
        `stored commit ${hs.commit} is past the stored log's last index ${this.raftLog.lastIndex()}; the store is inconsistent`,
      );
    }
    // A commit index older than the snapshot (its update was not synced) is raised to it: the snapshot is committed.
    this.raftLog.committed = Math.max(hs.commit, this.raftLog.committed);
    this.term = hs.term;
    this.vote = hs.vote;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  /** Whether this node may campaign: it is a voter of the current config (learners and removed nodes may not). */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && this.trk.isVoter(this.id);
  }

  // ---- sending -------------------------------------------------------------

  send(m: Message): void {
    if (m.from === NONE) m.from = this.id;
    if (m.type === 'vote' || m.type === 'voteResp' || m.type === 'preVote' || m.type === 'preVoteResp') {
      if (m.term === 0) throw new Error(`invariant: ${m.type} must carry a term`);
    } else if (m.type !== 'prop' && m.type !== 'readIndex') {
      m.term = this.term;
    }
    if (m.type === 'timeoutNow') this.leaseRevoked = true;
    this.msgs.push(m);
  }

  /** Sends entries from `pr.next` (or a snapshot when they are compacted); false if nothing was sent. */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const pastWindow = this.catchUpWindowFull(pr);
    if (pastWindow && !pr.heartbeatAllowance) return false;
    const prevIndex = pr.next - 1;
    // The follower needs entries we compacted: a snapshot instead (checked without throwing, since a
    // lagging follower is asked again on every broadcast and heartbeat response).
    const prevTerm = this.raftLog.termOrUndefined(prevIndex);
    if (prevTerm === undefined) return this.sendSnapshot(to, pr);
    let ents: Entry[];
    try {
      ents = this.raftLog.entries(pr.next, this.opts.maxSizePerMsg);
    } catch (e) {
      if (e instanceof CompactedError) return this.sendSnapshot(to, pr);
      throw e;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of ents) bytes += entrySize(e);
    this.send(
      newMessage({
        type: 'app',
        to,
        index: prevIndex,
        logTerm: prevTerm,
        entries: ents,
        commit: this.raftLog.committed,
      }),
    );
    pr.sentCommit = this.raftLog.committed;
    if (pastWindow) pr.heartbeatAllowance = false;
    const last = ents[ents.length - 1];
    pr.sentEntries(last ? last.index : prevIndex, ents.length, bytes);
    return true;
  }

  /**
   * Whether `pr` is catching up (in replicate state, it lacks committed entries not sent to it yet: a
   * follower that keeps up is sent every entry as it is appended) and its smaller window is full. A
   * heartbeat answer lets one append through it (`Progress.heartbeatAllowance`), as far as the
   * ordinary window allows.
   */
  private catchUpWindowFull(pr: Progress): boolean {
    const max = this.opts.maxCatchUpInflightBytes;
    return (
      max > 0 && pr.state === 'replicate' && pr.next <= this.raftLog.committed && pr.inflights.bytesInFlight() >= max
    );
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Ships the latest snapshot in `snapshotChunkBytes` chunks; the follower applies it once all arrived. */
  sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    const snap = this.raftLog.snapshot();
    if (snap.meta.index === 0) throw new Error('invariant: log compacted but storage has no snapshot');
    pr.becomeSnapshot(snap.meta.index);
    const size = this.opts.snapshotChunkBytes;
    const total = snap.data.length;
    let offset = 0;
    do {
      const end = Math.min(total, offset + size);
      this.send(
        newMessage({
          type: 'snap',
          to,
          snapshot: { meta: snap.meta, data: snap.data.subarray(offset, end) },
          snapOffset: offset,
          snapDone: end >= total,
        }),
      );
      offset = end;
    } while (offset < total);
    return true;
  }

  sendHeartbeat(to: NodeId, ctx: Uint8Array | undefined): void {
    const pr = this.trk.progress.get(to);
    // Never tell a follower to commit past what it is known to hold.
    const commit = Math.min(pr?.match ?? 0, this.raftLog.committed);
    // `index` carries the send tick: the follower echoes it and the lease rests on it (lease.ts).
    this.send(newMessage({ type: 'heartbeat', to, commit, index: this.ticks, ...(ctx ? { context: ctx } : {}) }));
  }

  forEachPeer(fn: (id: NodeId, pr: Progress) => void): void {
    for (const [id, pr] of this.trk.progress) if (id !== this.id) fn(id, pr);
  }

  bcastAppend(): void {
    this.forEachPeer((id) => this.sendAppend(id));
  }

  /**
   * Batching: new entries and commit updates wait until the host collects the
   * next Ready, so proposals that arrive together leave as one append per follower.
   */
  requestBroadcast(kind: 'entries' | 'commit'): void {
    if (kind === 'commit' || this.pendingBroadcast === 'none') this.pendingBroadcast = kind;
  }

  /** Sends what {@link requestBroadcast} deferred, pipelining as far as each follower's window allows. */
  flushBroadcast(): void {
    const kind = this.pendingBroadcast;
    this.pendingBroadcast = 'none';
    if (kind === 'none' || this.state !== 'leader') return;
    this.forEachPeer((id, pr) => {
      while (this.maybeSendAppend(id, false)) {
        /* keep sending */
      }
      // An empty append tells the commit index to a follower no append has told yet (unless deferred:
      // the host flushes what is still owed after a delay, see flushCommitNotice).
      if (kind === 'commit' && pr.sentCommit < this.raftLog.committed && !this.opts.deferCommitNotice) {
        this.sendAppend(id);
      }
    });
  }

  /**
   * On a leader, the commit index some follower that keeps up (replicate state) has not been sent yet;
   * 0 when none is owed. With `deferCommitNotice` the host flushes it after a delay.
   */
  commitNoticeOwed(): LogIndex {
    if (this.state !== 'leader') return 0;
    const committed = this.raftLog.committed;
    for (const [id, pr] of this.trk.progress) {
      if (id !== this.id && pr.state === 'replicate' && pr.sentCommit < committed) return committed;
    }
    return 0;
  }

  /** Sends an append (empty unless entries are due) to each follower in replicate state not yet told commit index `upTo`. */
  flushCommitNotice(upTo: LogIndex): void {
    if (this.state !== 'leader') return;
    const target = Math.min(upTo, this.raftLog.committed);
    this.forEachPeer((id, pr) => {
      if (pr.state === 'replicate' && pr.sentCommit < target) this.sendAppend(id);
    });
  }

  /**
   * Sends the heartbeats of a ReadIndex round carrying `ctx`: to every follower, or with `readIndexFanout:
   * 'quorum'` (outside a joint configuration) to the voters that answered a pending round most recently
   * (`Progress.readAnswerSeq`), as many as make a quorum with this node.
   */
  sendReadIndexHeartbeats(ctx: Uint8Array): void {
    const voters = this.trk.config.voters;
    if (this.opts.readIndexFanout === 'all' || voters.outgoing.size > 0) {
      this.bcastHeartbeat(ctx);
      return;
    }
    const need = Math.floor(voters.incoming.size / 2) + 1 - (voters.incoming.has(this.id) ? 1 : 0);
    const asked: { id: NodeId; seq: number }[] = [];
    for (const id of voters.incoming) {
      const pr = this.trk.progress.get(id);
      if (id !== this.id && pr !== undefined) asked.push({ id, seq: pr.readAnswerSeq });
    }
    asked.sort((a, b) => b.seq - a.seq);
    for (const { id } of asked.slice(0, need)) this.sendHeartbeat(id, ctx);
  }

  /**
   * Asks every follower that has not confirmed the newest pending ReadIndex round yet to confirm it;
   * false when none is pending (or this node does not lead).
   */
  hedgeReadIndex(): boolean {
    if (this.state !== 'leader') return false;
    const ctx = this.readOnly.lastPendingContext();
    if (ctx === undefined) return false;
    const acked = this.readOnly.acksOf(ctx);
    this.forEachPeer((id) => {
      if (!acked?.has(id)) this.sendHeartbeat(id, ctx);
    });
    return true;
  }

  bcastHeartbeat(ctx?: Uint8Array): void {
    const c = ctx ?? this.readOnly.lastPendingContext();
    this.forEachPeer((id) => this.sendHeartbeat(id, c));
  }

  // ---- state transitions ---------------------------------------------------

  reset(term: Term): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = NONE;
    this.leaseRevoked = false;
    this.trk.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.trk.progress) {
      pr.becomeProbe();
      pr.match = 0;
      pr.next = last + 1;
      pr.recentActive = false;
      pr.leaseAckTick = 0;
      if (id === this.id) {
        pr.match = this.opts.asyncStorageWrites ? this.raftLog.stableIndex() : last;
        pr.recentActive = true;
      }
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly.reset();
    this.pendingReadIndexMessages = [];
  }

  resetRandomizedElectionTimeout(): void {
    // §5.2: randomized timeouts make split votes rare.
    this.randomizedElectionTimeout = this.opts.random.int(this.opts.electionTick, this.opts.electionTickMax);
  }

  becomeFollower(term: Term, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = 'follower';
  }

  becomeCandidate(): void {
    if (this.state === 'leader') throw new Error('invariant: a leader cannot become candidate directly');
    // §5.2: a candidate increments its term and votes for itself.
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = 'candidate';
  }

  becomePreCandidate(): void {
    if (this.state === 'leader') throw new Error('invariant: a leader cannot become pre-candidate directly');
    // §9.6: pre-vote changes neither term nor vote, so a partitioned node cannot disrupt the group.
    this.trk.resetVotes();
    this.lead = NONE;
    this.state = 'preCandidate';
  }

  becomeLeader(): void {
    if (this.state === 'follower') throw new Error('invariant: a follower cannot become leader directly');
    this.reset(this.term);
    this.lead = this.id;
    this.state = 'leader';
    this.trk.progress.get(this.id)?.becomeReplicate();
    // An unapplied conf change may still be in the log: allow no new one until it is applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // §5.4.2: an empty entry of the new term lets earlier entries commit.
    if (!this.appendEntry([{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }])) {
      throw new Error('invariant: the empty leader entry was refused');
    }
  }

  // ---- ticks ---------------------------------------------------------------

  tick(): void {
    wake(this);
    this.ticks++;
    if (this.state === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup('election');
    }
  }

  tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const [, pr] of this.trk.progress) {
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= this.opts.electionTick) {
        // Chunks may have been lost: give up and probe again (which resends if still needed).
        pr.pendingSnapshot = 0;
        pr.becomeProbe();
      }
    }
    if (this.electionElapsed >= this.opts.electionTick) {
      this.electionElapsed = 0;
      if (this.opts.checkQuorum) this.checkQuorum();
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === 'leader' && this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.state !== 'leader') return;
    if (this.heartbeatElapsed >= this.opts.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  /** Check-quorum: a leader that has not heard from a quorum within an election timeout steps down. */
  checkQuorum(): void {
    if (!this.trk.quorumActive()) {
      this.becomeFollower(this.term, NONE);
      return;
    }
    this.forEachPeer((_, pr) => {
      pr.recentActive = false;
    });
  }

  // ---- elections -------------------------------------------------------------

  /** Starts an election if this node may (pre-vote first when enabled, unless a transfer forces it). */
  hup(kind: 'election' | 'transfer'): void {
    wake(this);
    if (this.state === 'leader' || !this.promotable()) return;
    if (this.hasUnappliedConfChanges()) return;
    if (kind === 'transfer') this.campaign('transfer');
    else this.campaign(this.opts.preVote ? 'preElection' : 'election');
  }

  hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    const lo = Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
    const ents = this.raftLog.slice(lo, this.raftLog.committed + 1, Number.MAX_SAFE_INTEGER);
    return ents.some((e) => e.type === 'confChange');
  }

  campaign(kind: CampaignType): void {
    let voteType: MessageType;
    let term: Term;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteType = 'preVote';
      // Pre-vote asks about the term we would campaign in, without entering it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = 'vote';
      term = this.term;
    }
    this.trk.recordVote(this.id, true);
    if (this.trk.tallyVotes().result === 'won') {
      if (kind === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const ids = [...this.trk.voterIds()].sort();
    for (const id of ids) {
      if (id === this.id) continue;
      this.send(
        newMessage({
          type: voteType,
          to: id,
          term,
          index: this.raftLog.lastIndex(),
          logTerm: this.raftLog.lastTerm(),
          ...(kind === 'transfer' ? { context: TRANSFER_CONTEXT } : {}),
        }),
      );
    }
  }

  // ---- step ------------------------------------------------------------------

  /**
   * Handles one message. Returns an error for a proposal that cannot be
   * accepted (the caller throws it for local proposals, drops it otherwise).
   */
  step(m: Message): ProposalDroppedError | undefined {
    wake(this);
    if (m.term === 0) {
      // Local or forwarded request (prop, readIndex): no term to compare.
    } else if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        const force = isTransferContext(m.context);
        const heardLeader = this.lead !== NONE && this.electionElapsed < this.opts.electionTick;
        const inLease = this.opts.checkQuorum && (heardLeader || this.ticks < this.voteQuietUntil);
        // Leader lease: while we hear from a live leader, ignore disruptive candidates (§4.2.3).
        if (!force && inLease) return undefined;
      }
      if (m.type === 'preVote') {
        // §9.6: a pre-vote request never changes our term.
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // We take the term once we win the real election.
      } else if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') {
        // §5.1: a higher term makes us a follower of its sender.
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.opts.checkQuorum || this.opts.preVote) && (m.type === 'heartbeat' || m.type === 'app')) {
        // A stale leader learns our term, so it steps down instead of waiting forever.
        this.send(newMessage({ type: 'appResp', to: m.from }));
      } else if (m.type === 'preVote') {
        this.send(newMessage({ type: 'preVoteResp', to: m.from, term: this.term, reject: true }));
      }
      // §5.1: other stale-term messages are ignored.
      return undefined;
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return undefined;
    }
    switch (this.state) {
      case 'leader':
        return stepLeader(this, m);
      case 'candidate':
      case 'preCandidate':
        return stepCandidate(this, m);
      case 'follower':
        return stepFollower(this, m);
      default: {
        const never: never = this.state;
        throw new Error(`unknown role ${String(never)}`);
      }
    }
  }

  handleVoteRequest(m: Message): void {
    // §5.2: at most one vote per term (repeating the same vote is fine); a
    // pre-vote for a future term may be granted freely.
    // A node backing a lease grants no new vote, even at its own term (it may have reached the
    // candidate's term through another message while still within the lease, see lease.ts).
    const quiet = this.ticks < this.voteQuietUntil && !isTransferContext(m.context);
    const canVote =
      this.vote === m.from ||
      (!quiet && this.vote === NONE && this.lead === NONE) ||
      (!quiet && m.type === 'preVote' && m.term > this.term);
    // §5.4.1: only for a candidate whose log is at least as up to date as ours.
    if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
      this.send(newMessage({ type: voteRespType(m.type), to: m.from, term: m.term }));
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(newMessage({ type: voteRespType(m.type), to: m.from, term: this.term, reject: true }));
    }
  }

  // ---- log -------------------------------------------------------------------

  /** Leader: appends entries of the current term; false when the uncommitted bound refuses them. */
  appendEntry(es: Entry[]): boolean {
    let li = this.raftLog.lastIndex();
    let size = 0;
    for (const e of es) size += entrySize(e);
    const max = this.opts.maxUncommittedEntriesSize;
    if (max > 0 && this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > max) return false;
    this.uncommittedSize += size;
    for (const e of es) {
      e.term = this.term;
      e.index = ++li;
    }
    li = this.raftLog.append(es);
    // With synchronous writes the leader's entries are durable before anything it sends; with
    // asynchronous ones it counts itself only once the host reports them persisted (onPersisted
    // commits then: here nothing a quorum holds changed).
    if (!this.opts.asyncStorageWrites) {
      this.trk.progress.get(this.id)?.maybeUpdate(li);
      this.maybeCommit();
    }
    return true;
  }

  /** Advances the commit index to what a quorum holds; true if it moved. */
  maybeCommit(): boolean {
    const moved = this.raftLog.maybeCommit(this.trk.committed(), this.term);
    if (moved) releasePendingReadIndexMessages(this);
    return moved;
  }

  /** The host persisted entries through `index` (asynchronous writes): the leader may now count itself. */
  onPersisted(index: LogIndex): void {
    if (this.state !== 'leader') return;
    const pr = this.trk.progress.get(this.id);
    if (!pr?.maybeUpdate(index) || !this.maybeCommit()) return;
    if (this.opts.deferCommitNotice) this.requestBroadcast('commit');
    else this.bcastAppend();
  }

  /** Called as the application reports entries applied: auto-leave a joint config once its entry is applied. */
  onApplied(): void {
    if (this.state === 'leader' && this.trk.config.autoLeave && this.raftLog.applied >= this.pendingConfIndex) {
      const data = encodeConfChange({ transition: 'auto', changes: [], context: new Uint8Array(0) });
      if (this.appendEntry([{ term: 0, index: 0, type: 'confChange', data }])) {
        this.pendingConfIndex = this.raftLog.lastIndex();
        this.bcastAppend();
      }
    }
  }

  reduceUncommittedSize(ents: Entry[]): void {
    if (this.state !== 'leader') return;
    let s = 0;
    for (const e of ents) s += entrySize(e);
    this.uncommittedSize = Math.max(0, this.uncommittedSize - s);
  }
}
