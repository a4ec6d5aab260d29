import {
  type ConfChange,
  type Entry,
  type LogIndex,
  type Message,
  type NodeId,
  ProposalDroppedError,
} from '@cohort/core';
import { decodeConfChange } from './confchange/codec.js';
import { leaseHolds } from './lease.js';
import { NONE, newMessage } from './message.js';
import { jointVoteResult } from './quorum/joint.js';
import type { Raft } from './raft.js';
import type { Progress } from './tracker/progress.js';

/* The leader's side of the protocol: proposals, acknowledgements, transfers and reads. */

/** The leader's handling of one message (votes and term changes are handled before). */
export function stepLeader(r: Raft, m: Message): ProposalDroppedError | undefined {
  switch (m.type) {
    case 'prop':
      return leaderPropose(r, m);
    case 'readIndex':
      leaderReadIndex(r, m);
      return undefined;
    case 'transferLeader':
      leaderTransfer(r, m.from);
      return undefined;
    default:
      break;
  }
  const pr = r.trk.progress.get(m.from);
  if (!pr) return undefined;
  switch (m.type) {
    case 'appResp':
      pr.recentActive = true;
      if (m.reject) leaderHandleReject(r, m, pr);
      else leaderHandleAck(r, m, pr);
      break;
    case 'heartbeatResp':
      leaderHandleHeartbeatResp(r, m, pr);
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

function leaderPropose(r: Raft, m: Message): ProposalDroppedError | undefined {
  if (m.entries.length === 0) return new ProposalDroppedError('empty proposal');
  if (!r.trk.progress.has(r.id)) {
    return new ProposalDroppedError('this node was removed from the group; proposals are dropped');
  }
  if (r.leadTransferee !== NONE) {
    return new ProposalDroppedError(`leadership is being transferred to ${r.leadTransferee}; retry shortly`);
  }
  const ents: Entry[] = [];
  for (const e of m.entries) {
    if (e.type === 'confChange') {
      const refused = checkConfChangeProposal(r, e);
      if (refused) return refused;
    }
    ents.push({ term: 0, index: 0, type: e.type, data: e.data });
  }
  if (!r.appendEntry(ents)) {
    return new ProposalDroppedError(
      `uncommitted log exceeds maxUncommittedEntriesSize (${r.opts.maxUncommittedEntriesSize} bytes); retry after commits`,
    );
  }
  for (const e of ents) if (e.type === 'confChange') r.pendingConfIndex = e.index;
  r.requestBroadcast('entries');
  return undefined;
}

function checkConfChangeProposal(r: Raft, e: Entry): ProposalDroppedError | undefined {
  if (r.pendingConfIndex > r.raftLog.applied) {
    return new ProposalDroppedError(
      `a conf change at index ${r.pendingConfIndex} is not yet applied (applied ${r.raftLog.applied}); one at a time`,
    );
  }
  let cc: ConfChange;
  try {
    cc = decodeConfChange(e.data);
  } catch (err) {
    return new ProposalDroppedError(`conf change data does not decode: ${(err as Error).message}`);
  }
  const joint = r.trk.isJoint();
  const leave = cc.changes.length === 0;
  if (joint && !leave) return new ProposalDroppedError('the configuration is joint; leave it before another change');
  if (!joint && leave) return new ProposalDroppedError('the configuration is not joint; there is nothing to leave');
  return undefined;
}

function leaderHandleReject(r: Raft, m: Message, pr: Progress): void {
  // Fast backtracking: the follower's hint (and its term) lets us skip a whole term at once.
  let nextProbe = m.rejectHint;
  if (m.rejectTerm > 0) nextProbe = r.raftLog.findConflictByTerm(m.rejectHint, m.rejectTerm).index;
  if (lostAcknowledgedEntries(m, pr)) {
    r.lostEntries++;
    r.lastLostEntries = { id: m.from, match: pr.match, hint: m.rejectHint };
    pr.forgetMatch(Math.min(m.index, nextProbe + 1));
    r.sendAppend(m.from);
    return;
  }
  if (pr.maybeDecrTo(m.index, nextProbe)) {
    if (pr.state === 'replicate') pr.becomeProbe();
    r.sendAppend(m.from);
  }
}

/**
 * Whether rejection `m` says the follower no longer holds entries it acknowledged: its storage was wiped
 * or replaced while this leader kept its match. etcd never probes below match (a rejection at or below it
 * is stale, and backtracking stops at match + 1), which leaves such a follower stuck (our probes start
 * past its log and, while the entry at match is in our log, no snapshot is ever sent). We depart from
 * etcd for a rejection that cannot be stale:
 * - in probe state only one append is outstanding, and we take only the answer to it (one was sent since
 *   the state was entered, and `m.index` is `next - 1`); that probe left after match was recorded, at or
 *   above match (`next > match`);
 * - a follower still holding its acknowledged entries answers such a probe with a hint of at least match:
 *   its log equals ours through match and terms never decrease along a log, so findConflictByTerm stops
 *   at match or later.
 * So a hint below match on the answer to the current probe means the entries are gone. A rejection
 * merely reordered or from an older probe fails the first test and takes the ordinary path (ignored when
 * at or below match, as in etcd); only a duplicate of an old rejection at exactly the current probe index
 * can pass, and believing it costs a resend from the hint, never safety: a lower match only delays commits.
 */
function lostAcknowledgedEntries(m: Message, pr: Progress): boolean {
  return (
    pr.state === 'probe' && pr.probeSent && m.index === pr.next - 1 && m.index >= pr.match && m.rejectHint < pr.match
  );
}

function leaderHandleAck(r: Raft, m: Message, pr: Progress): void {
  const wasPaused = pr.isPaused();
  if (!pr.maybeUpdate(m.index)) {
    if (pr.state === 'probe' && pr.match === m.index) pr.msgAppFlowPaused = false;
    else return;
  }
  if (pr.state === 'probe') {
    pr.becomeReplicate();
  } else if (pr.state === 'snapshot' && pr.match + 1 >= r.raftLog.firstIndex()) {
    // The follower caught up through the snapshot; replicate from its match.
    pr.becomeProbe();
    pr.becomeReplicate();
  } else if (pr.state === 'replicate') {
    pr.inflights.freeLE(m.index);
  }
  if (r.maybeCommit()) {
    // Followers learn the new commit index with the next batch of appends.
    r.requestBroadcast('commit');
  } else if (wasPaused) {
    r.sendAppend(m.from);
  }
  // Pipelining: keep sending while the inflight window allows.
  while (r.maybeSendAppend(m.from, false)) {
    /* keep sending */
  }
  if (m.from === r.leadTransferee && pr.match === r.raftLog.lastIndex()) {
    r.send(newMessage({ type: 'timeoutNow', to: m.from }));
  }
}

function leaderHandleHeartbeatResp(r: Raft, m: Message, pr: Progress): void {
  pr.recentActive = true;
  pr.msgAppFlowPaused = false;
  if (pr.state === 'replicate') pr.heartbeatAllowance = true;
  // A tick from the future is no heartbeat of ours: never let it stretch the lease.
  // Nor one sent before the leader last woke from quiescence (quiesce.ts).
  if (m.index > pr.leaseAckTick && m.index <= r.ticks && m.index > r.leaseFloorTick) pr.leaseAckTick = m.index;
  // A follower refusing the heartbeat's commit (at most its match) holds less than it acknowledged. Probing
  // it is always safe, and its answer to the probe decides (lostAcknowledgedEntries); without this, an idle
  // leader would never probe a caught-up follower whose storage was replaced.
  if (m.reject && pr.state === 'replicate') pr.becomeProbe();
  if (pr.match < r.raftLog.lastIndex() || pr.state === 'probe') r.sendAppend(m.from);
  if (m.context.length === 0) return;
  const acks = r.readOnly.recvAck(m.from, m.context);
  if (!acks) return;
  // An answer that counts toward a pending round: rounds with readIndexFanout 'quorum' ask this follower
  // again before one whose answers come after the rounds they were asked for ended (a slow one).
  pr.readAnswerSeq = ++r.readAnswers;
  const votes = new Map<NodeId, boolean>();
  for (const id of acks) votes.set(id, true);
  if (jointVoteResult(r.trk.config.voters, votes) !== 'won') return;
  for (const rs of r.readOnly.advance(m.context)) respondToReadIndex(r, rs.req, rs.index);
}

function leaderTransfer(r: Raft, transferee: NodeId): void {
  const pr = r.trk.progress.get(transferee);
  // A learner cannot lead; an unknown node neither.
  if (!pr || pr.isLearner) return;
  if (r.leadTransferee === transferee) return;
  r.leadTransferee = NONE;
  if (transferee === r.id) return;
  // The transfer must finish within one election timeout.
  r.electionElapsed = 0;
  r.leadTransferee = transferee;
  if (pr.match === r.raftLog.lastIndex()) {
    r.send(newMessage({ type: 'timeoutNow', to: transferee }));
  } else {
    r.sendAppend(transferee);
  }
}

function leaderReadIndex(r: Raft, m: Message): void {
  if (r.trk.isSingleton(r.id)) {
    respondToReadIndex(r, m, r.raftLog.committed);
    return;
  }
  // §6.4: the leader must know the latest commit index, i.e. have committed an entry of its term.
  if (r.raftLog.termOrZero(r.raftLog.committed) !== r.term) {
    r.pendingReadIndexMessages.push(m);
    return;
  }
  serveReadIndex(r, m);
}

function serveReadIndex(r: Raft, m: Message): void {
  if (r.opts.readOnlyOption === 'leaseBased' && leaseHolds(r)) {
    // Lease: no other leader can be elected while it holds (lease.ts); otherwise fall back to ReadIndex.
    respondToReadIndex(r, m, r.raftLog.committed);
    return;
  }
  r.readOnly.addRequest(r.raftLog.committed, m);
  r.readOnly.recvAck(r.id, m.context);
  r.sendReadIndexHeartbeats(m.context);
}

function respondToReadIndex(r: Raft, req: Message, index: LogIndex): void {
  if (req.from === NONE || req.from === r.id) {
    r.readStates.push({ index, context: req.context });
  } else {
    r.send(newMessage({ type: 'readIndexResp', to: req.from, index, context: req.context }));
  }
}

/** Serves reads deferred until the leader committed an entry of its term (§6.4). */
export function releasePendingReadIndexMessages(r: Raft): void {
  if (r.pendingReadIndexMessages.length === 0) return;
  if (r.raftLog.termOrZero(r.raftLog.committed) !== r.term) return;
  const pending = r.pendingReadIndexMessages;
  r.pendingReadIndexMessages = [];
  for (const m of pending) serveReadIndex(r, m);
}
