import {
  CompactedError,
  type ConfChange,
  type ConfState,
  ConfigError,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type MessageType,
  type NodeId,
  ProposalDroppedError,
  type RaftLogReader,
  type Snapshot,
  type Term,
} from '@cohort/core';
import { type ChangeResult, Changer } from './confchange/changer.js';
import { decodeConfChange, encodeConfChange } from './confchange/codec.js';
import { restoreConfig } from './confchange/restore.js';
import { RaftLog, entrySize } from './log/raft-log.js';
import { TRANSFER_CONTEXT, isTransferContext, newMessage, voteRespType } from './message.js';
import { type ResolvedOptions, resolveOptions } from './options.js';
import { jointVoteResult } from './quorum/joint.js';
import { ReadOnly } from './read-only.js';
import { ProgressTracker, toConfState } from './tracker/progress-tracker.js';
import type { Progress } from './tracker/progress.js';
import type { RaftOptions, ReadState, StateRole } from './types.js';

const NONE: NodeId = '';

/** The kind of campaign: pre-vote first (§9.6), a real election, or one forced by leadership transfer. */
type CampaignType = 'preElection' | 'election' | 'transfer';

/** A snapshot being reassembled from `snap` chunks. */
interface SnapshotReceipt {
  from: NodeId;
  term: Term;
  index: LogIndex;
  snapTerm: Term;
  chunks: Uint8Array[];
  received: number;
}

/**
 * The Raft state machine of one node. Pure: every input arrives through
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
  private pendingReadIndexMessages: Message[] = [];
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private receipt: SnapshotReceipt | undefined;

  constructor(options: RaftOptions, storage: RaftLogReader) {
    this.opts = resolveOptions(options);
    this.id = options.id;
    this.raftLog = new RaftLog(storage);
    const { hardState, confState } = storage.initialState();
    this.applyChangeResult(
      restoreConfig(confState, this.raftLog.lastIndex(), this.opts.maxInflightMsgs, this.opts.maxInflightBytes),
    );
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState);
    if (this.opts.applied > 0) this.raftLog.appliedTo(Math.min(this.opts.applied, this.raftLog.committed));
    this.becomeFollower(this.term, NONE);
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new ConfigError(
        `stored commit ${hs.commit} is outside the stored log [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]; the store is inconsistent`,
      );
    }
    this.raftLog.committed = hs.commit;
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
    this.msgs.push(m);
  }

  /** Sends entries from `pr.next` (or a snapshot when they are compacted); false if nothing was sent. */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    let prevTerm: Term;
    let ents: Entry[];
    try {
      prevTerm = this.raftLog.term(prevIndex);
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
    const last = ents[ents.length - 1];
    pr.sentEntries(last ? last.index : prevIndex, ents.length, bytes);
    return true;
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Ships the latest snapshot in `snapshotChunkBytes` chunks; the follower applies it once all arrived. */
  private sendSnapshot(to: NodeId, pr: Progress): boolean {
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

  private sendHeartbeat(to: NodeId, ctx: Uint8Array | undefined): void {
    const pr = this.trk.progress.get(to);
    // Never tell a follower to commit past what it is known to hold.
    const commit = Math.min(pr?.match ?? 0, this.raftLog.committed);
    this.send(newMessage({ type: 'heartbeat', to, commit, ...(ctx ? { context: ctx } : {}) }));
  }

  private forEachPeer(fn: (id: NodeId, pr: Progress) => void): void {
    for (const [id, pr] of this.trk.progress) if (id !== this.id) fn(id, pr);
  }

  bcastAppend(): void {
    this.forEachPeer((id) => this.sendAppend(id));
  }

  private bcastHeartbeat(ctx?: Uint8Array): void {
    const c = ctx ?? this.readOnly.lastPendingContext();
    this.forEachPeer((id) => this.sendHeartbeat(id, c));
  }

  // ---- state transitions ---------------------------------------------------

  private reset(term: Term): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = NONE;
    this.trk.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.trk.progress) {
      pr.becomeProbe();
      pr.match = 0;
      pr.next = last + 1;
      pr.recentActive = false;
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

  private resetRandomizedElectionTimeout(): void {
    // §5.2: randomized timeouts make split votes rare.
    const et = this.opts.electionTick;
    this.randomizedElectionTimeout = this.opts.random.int(et, 2 * et - 1);
  }

  becomeFollower(term: Term, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = 'follower';
  }

  private becomeCandidate(): void {
    if (this.state === 'leader') throw new Error('invariant: a leader cannot become candidate directly');
    // §5.2: a candidate increments its term and votes for itself.
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = 'candidate';
  }

  private becomePreCandidate(): void {
    if (this.state === 'leader') throw new Error('invariant: a leader cannot become pre-candidate directly');
    // §9.6: pre-vote changes neither term nor vote, so a partitioned node cannot disrupt the group.
    this.trk.resetVotes();
    this.lead = NONE;
    this.state = 'preCandidate';
  }

  private becomeLeader(): void {
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
    if (this.state === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup('election');
    }
  }

  private tickHeartbeat(): void {
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
  private checkQuorum(): void {
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
    if (this.state === 'leader' || !this.promotable()) return;
    if (this.hasUnappliedConfChanges()) return;
    if (kind === 'transfer') this.campaign('transfer');
    else this.campaign(this.opts.preVote ? 'preElection' : 'election');
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    const lo = Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
    const ents = this.raftLog.slice(lo, this.raftLog.committed + 1, Number.MAX_SAFE_INTEGER);
    return ents.some((e) => e.type === 'confChange');
  }

  private campaign(kind: CampaignType): void {
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
    if (m.term === 0) {
      // Local or forwarded request (prop, readIndex): no term to compare.
    } else if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        const force = isTransferContext(m.context);
        const inLease = this.opts.checkQuorum && this.lead !== NONE && this.electionElapsed < this.opts.electionTick;
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
        return this.stepLeader(m);
      case 'candidate':
      case 'preCandidate':
        return this.stepCandidate(m);
      case 'follower':
        return this.stepFollower(m);
      default: {
        const never: never = this.state;
        throw new Error(`unknown role ${String(never)}`);
      }
    }
  }

  private handleVoteRequest(m: Message): void {
    // §5.2: at most one vote per term (repeating the same vote is fine); a
    // pre-vote for a future term may be granted freely.
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === 'preVote' && m.term > this.term);
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

  private stepLeader(m: Message): ProposalDroppedError | undefined {
    switch (m.type) {
      case 'prop':
        return this.leaderPropose(m);
      case 'readIndex':
        this.leaderReadIndex(m);
        return undefined;
      case 'transferLeader':
        this.leaderTransfer(m.from);
        return undefined;
      default:
        break;
    }
    const pr = this.trk.progress.get(m.from);
    if (!pr) return undefined;
    switch (m.type) {
      case 'appResp':
        pr.recentActive = true;
        if (m.reject) this.leaderHandleReject(m, pr);
        else this.leaderHandleAck(m, pr);
        break;
      case 'heartbeatResp':
        this.leaderHandleHeartbeatResp(m, pr);
        break;
      case 'snapResp':
        pr.recentActive = true;
        if (m.reject && pr.state === 'snapshot') {
          // A chunk was lost or arrived out of order: probe again, resending the snapshot on the next heartbeat round.
          pr.pendingSnapshot = 0;
          pr.becomeProbe();
          pr.msgAppFlowPaused = true;
        }
        break;
      default:
        break;
    }
    return undefined;
  }

  private leaderPropose(m: Message): ProposalDroppedError | undefined {
    if (m.entries.length === 0) return new ProposalDroppedError('empty proposal');
    if (!this.trk.progress.has(this.id)) {
      return new ProposalDroppedError('this node was removed from the group; proposals are dropped');
    }
    if (this.leadTransferee !== NONE) {
      return new ProposalDroppedError(`leadership is being transferred to ${this.leadTransferee}; retry shortly`);
    }
    const ents: Entry[] = [];
    for (const e of m.entries) {
      if (e.type === 'confChange') {
        const refused = this.checkConfChangeProposal(e);
        if (refused) return refused;
      }
      ents.push({ term: 0, index: 0, type: e.type, data: e.data });
    }
    if (!this.appendEntry(ents)) {
      return new ProposalDroppedError(
        `uncommitted log exceeds maxUncommittedEntriesSize (${this.opts.maxUncommittedEntriesSize} bytes); retry after commits`,
      );
    }
    for (const e of ents) if (e.type === 'confChange') this.pendingConfIndex = e.index;
    this.bcastAppend();
    return undefined;
  }

  private checkConfChangeProposal(e: Entry): ProposalDroppedError | undefined {
    if (this.pendingConfIndex > this.raftLog.applied) {
      return new ProposalDroppedError(
        `a conf change at index ${this.pendingConfIndex} is not yet applied (applied ${this.raftLog.applied}); one at a time`,
      );
    }
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch (err) {
      return new ProposalDroppedError(`conf change data does not decode: ${(err as Error).message}`);
    }
    const joint = this.trk.isJoint();
    const leave = cc.changes.length === 0;
    if (joint && !leave) return new ProposalDroppedError('the configuration is joint; leave it before another change');
    if (!joint && leave) return new ProposalDroppedError('the configuration is not joint; there is nothing to leave');
    return undefined;
  }

  private leaderHandleReject(m: Message, pr: Progress): void {
    // Fast backtracking: the follower's hint (and its term) lets us skip a whole term at once.
    let nextProbe = m.rejectHint;
    if (m.rejectTerm > 0) nextProbe = this.raftLog.findConflictByTerm(m.rejectHint, m.rejectTerm).index;
    if (pr.maybeDecrTo(m.index, nextProbe)) {
      if (pr.state === 'replicate') pr.becomeProbe();
      this.sendAppend(m.from);
    }
  }

  private leaderHandleAck(m: Message, pr: Progress): void {
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (pr.state === 'probe' && pr.match === m.index) pr.msgAppFlowPaused = false;
      else return;
    }
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match + 1 >= this.raftLog.firstIndex()) {
      // The follower caught up through the snapshot; replicate from its match.
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else if (wasPaused) {
      this.sendAppend(m.from);
    }
    // Pipelining: keep sending while the inflight window allows.
    while (this.maybeSendAppend(m.from, false)) {
      /* keep sending */
    }
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
      this.send(newMessage({ type: 'timeoutNow', to: m.from }));
    }
  }

  private leaderHandleHeartbeatResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    if (pr.match < this.raftLog.lastIndex() || pr.state === 'probe') this.sendAppend(m.from);
    if (this.opts.readOnlyOption !== 'safe' || m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (!acks) return;
    const votes = new Map<NodeId, boolean>();
    for (const id of acks) votes.set(id, true);
    if (jointVoteResult(this.trk.config.voters, votes) !== 'won') return;
    for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
  }

  private leaderTransfer(transferee: NodeId): void {
    const pr = this.trk.progress.get(transferee);
    // A learner cannot lead; an unknown node neither.
    if (!pr || pr.isLearner) return;
    if (this.leadTransferee === transferee) return;
    this.leadTransferee = NONE;
    if (transferee === this.id) return;
    // The transfer must finish within one election timeout.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.raftLog.lastIndex()) {
      this.send(newMessage({ type: 'timeoutNow', to: transferee }));
    } else {
      this.sendAppend(transferee);
    }
  }

  private leaderReadIndex(m: Message): void {
    if (this.trk.isSingleton(this.id)) {
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    // §6.4: the leader must know the latest commit index, i.e. have committed an entry of its term.
    if (this.raftLog.termOrZero(this.raftLog.committed) !== this.term) {
      this.pendingReadIndexMessages.push(m);
      return;
    }
    this.serveReadIndex(m);
  }

  private serveReadIndex(m: Message): void {
    if (this.opts.readOnlyOption === 'leaseBased') {
      // Lease: check-quorum guarantees no other leader within an election timeout.
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    this.readOnly.addRequest(this.raftLog.committed, m);
    this.readOnly.recvAck(this.id, m.context);
    this.bcastHeartbeat(m.context);
  }

  private respondToReadIndex(req: Message, index: LogIndex): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, context: req.context });
    } else {
      this.send(newMessage({ type: 'readIndexResp', to: req.from, index, context: req.context }));
    }
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (this.raftLog.termOrZero(this.raftLog.committed) !== this.term) return;
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.serveReadIndex(m);
  }

  private stepCandidate(m: Message): ProposalDroppedError | undefined {
    const respType: MessageType = this.state === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    switch (m.type) {
      case 'prop':
        return new ProposalDroppedError('no leader: an election is in progress; retry shortly');
      case 'app':
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return undefined;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return undefined;
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshotChunk(m);
        return undefined;
      default:
        break;
    }
    if (m.type !== respType) return undefined;
    this.trk.recordVote(m.from, !m.reject);
    const { result } = this.trk.tallyVotes();
    if (result === 'won') {
      if (this.state === 'preCandidate') {
        this.campaign('election');
      } else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (result === 'lost') {
      // A rejected pre-candidate or candidate goes back to follow whoever wins.
      this.becomeFollower(this.term, NONE);
    }
    return undefined;
  }

  private stepFollower(m: Message): ProposalDroppedError | undefined {
    switch (m.type) {
      case 'prop':
        if (this.lead === NONE) return new ProposalDroppedError('no leader is known; retry shortly');
        this.send({ ...m, to: this.lead });
        return undefined;
      case 'app':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return undefined;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return undefined;
      case 'snap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshotChunk(m);
        return undefined;
      case 'transferLeader':
        if (this.lead !== NONE) this.send({ ...m, to: this.lead });
        return undefined;
      case 'timeoutNow':
        // Leadership transfer: campaign at once, skipping pre-vote and any lease.
        this.hup('transfer');
        return undefined;
      case 'readIndex':
        if (this.lead === NONE) return new ProposalDroppedError('no leader is known to serve the read; retry shortly');
        this.send({ ...m, to: this.lead });
        return undefined;
      case 'readIndexResp':
        this.readStates.push({ index: m.index, context: m.context });
        return undefined;
      default:
        return undefined;
    }
  }

  // ---- follower handlers ---------------------------------------------------

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Already committed here: tell the leader where we are.
      this.send(newMessage({ type: 'appResp', to: m.from, index: this.raftLog.committed }));
      return;
    }
    const last = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (last !== undefined) {
      this.send(newMessage({ type: 'appResp', to: m.from, index: last }));
      return;
    }
    // §5.3 log matching failed: hint the last index whose term could match.
    const hint = this.raftLog.findConflictByTerm(Math.min(m.index, this.raftLog.lastIndex()), m.logTerm);
    this.send(
      newMessage({
        type: 'appResp',
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        rejectTerm: hint.term,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    this.send(newMessage({ type: 'heartbeatResp', to: m.from, context: m.context }));
  }

  /** Reassembles `snap` chunks in order; applies the snapshot only once the last chunk arrives. */
  private handleSnapshotChunk(m: Message): void {
    const snap = m.snapshot;
    if (!snap) return;
    const r = this.receipt;
    if (m.snapOffset === 0) {
      this.receipt = {
        from: m.from,
        term: m.term,
        index: snap.meta.index,
        snapTerm: snap.meta.term,
        chunks: [snap.data],
        received: snap.data.length,
      };
    } else if (
      r &&
      r.from === m.from &&
      r.term === m.term &&
      r.index === snap.meta.index &&
      r.snapTerm === snap.meta.term &&
      r.received === m.snapOffset
    ) {
      r.chunks.push(snap.data);
      r.received += snap.data.length;
    } else {
      this.receipt = undefined;
      this.send(newMessage({ type: 'snapResp', to: m.from, index: snap.meta.index, reject: true }));
      return;
    }
    if (!m.snapDone) return;
    const done = this.receipt as SnapshotReceipt;
    this.receipt = undefined;
    const data = new Uint8Array(done.received);
    let off = 0;
    for (const c of done.chunks) {
      data.set(c, off);
      off += c.length;
    }
    this.handleSnapshot({ meta: snap.meta, data });
  }

  private handleSnapshot(s: Snapshot): void {
    if (this.restore(s)) {
      this.send(newMessage({ type: 'appResp', to: this.lead, index: this.raftLog.lastIndex() }));
    } else {
      this.send(newMessage({ type: 'appResp', to: this.lead, index: this.raftLog.committed }));
    }
  }

  /** Installs a leader's snapshot unless our log already covers it; returns whether it was installed. */
  private restore(s: Snapshot): boolean {
    if (s.meta.index <= this.raftLog.committed) return false;
    const cs = s.meta.confState;
    const all = [...cs.voters, ...cs.learners, ...cs.votersOutgoing];
    // A snapshot from a config that does not include us is not ours to install.
    if (!all.includes(this.id)) return false;
    if (this.raftLog.matchTerm(s.meta.index, s.meta.term)) {
      // We already hold this prefix: just fast-forward the commit index.
      this.raftLog.commitTo(s.meta.index);
      return false;
    }
    this.raftLog.restore(s);
    this.trk = new ProgressTracker();
    this.applyChangeResult(
      restoreConfig(cs, this.raftLog.lastIndex(), this.opts.maxInflightMsgs, this.opts.maxInflightBytes),
    );
    return true;
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
    // asynchronous ones it counts itself only once the host reports them persisted.
    if (!this.opts.asyncStorageWrites) this.trk.progress.get(this.id)?.maybeUpdate(li);
    this.maybeCommit();
    return true;
  }

  /** Advances the commit index to what a quorum holds; true if it moved. */
  maybeCommit(): boolean {
    const moved = this.raftLog.maybeCommit(this.trk.committed(), this.term);
    if (moved) this.releasePendingReadIndexMessages();
    return moved;
  }

  /** The host persisted entries through `index` (asynchronous writes): the leader may now count itself. */
  onPersisted(index: LogIndex): void {
    if (this.state !== 'leader') return;
    const pr = this.trk.progress.get(this.id);
    if (pr?.maybeUpdate(index) && this.maybeCommit()) this.bcastAppend();
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

  // ---- membership -------------------------------------------------------------

  /** Applies a committed conf change; returns the new membership. Throws `ConfigError` if it is invalid. */
  applyConfChange(cc: ConfChange): ConfState {
    const changer = new Changer(
      this.trk.config,
      this.trk.progress,
      this.raftLog.lastIndex(),
      this.opts.maxInflightMsgs,
      this.opts.maxInflightBytes,
    );
    let result: ChangeResult;
    if (cc.changes.length === 0) {
      result = changer.leaveJoint();
    } else if (cc.transition !== 'auto' || cc.changes.length > 1) {
      // Several changes at once, or an explicit request, go through joint consensus (§6).
      result = changer.enterJoint(cc.transition !== 'explicit', cc.changes);
    } else {
      result = changer.simple(cc.changes);
    }
    return this.switchToConfig(result);
  }

  private applyChangeResult(result: ChangeResult): void {
    this.trk.config = result.config;
    this.trk.progress = result.progress;
    for (const [id, pr] of this.trk.progress) pr.isLearner = result.config.learners.has(id);
    const self = this.trk.progress.get(this.id);
    this.isLearner = self?.isLearner ?? false;
  }

  private switchToConfig(result: ChangeResult): ConfState {
    this.applyChangeResult(result);
    const cs = toConfState(this.trk.config);
    if (this.state !== 'leader') return cs;
    if (!this.trk.isVoter(this.id)) {
      // A removed (or demoted) leader steps down, handing off to an up-to-date voter if there is one.
      let best: NodeId = NONE;
      let bestMatch = -1;
      for (const id of [...this.trk.voterIds()].sort()) {
        const pr = this.trk.progress.get(id);
        if (pr && pr.match > bestMatch) {
          best = id;
          bestMatch = pr.match;
        }
      }
      if (best !== NONE && bestMatch === this.raftLog.lastIndex()) {
        this.send(newMessage({ type: 'timeoutNow', to: best }));
      }
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.maybeCommit()) {
      // The new config may commit entries the old one could not.
      this.bcastAppend();
    } else {
      this.forEachPeer((id) => this.maybeSendAppend(id, false));
    }
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) this.leadTransferee = NONE;
    return cs;
  }
}
