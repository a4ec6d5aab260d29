import { type Message, type MessageType, ProposalDroppedError, type Snapshot } from '@cohort/core';
import { restoreConfig } from './confchange/restore.js';
import { applyChangeResult } from './membership.js';
import { NONE, newMessage } from './message.js';
import type { Raft, SnapshotReceipt } from './raft.js';
import { ProgressTracker } from './tracker/progress-tracker.js';

/* The candidate's and follower's side of the protocol: appends, heartbeats and snapshots from a leader. */

/** A (pre-)candidate's handling of one message: tally votes, or follow a leader of its term. */
export function stepCandidate(r: Raft, m: Message): ProposalDroppedError | undefined {
  const respType: MessageType = r.state === 'preCandidate' ? 'preVoteResp' : 'voteResp';
  switch (m.type) {
    case 'prop':
      return new ProposalDroppedError('no leader: an election is in progress; retry shortly');
    case 'app':
      r.becomeFollower(m.term, m.from);
      handleAppendEntries(r, m);
      return undefined;
    case 'heartbeat':
      r.becomeFollower(m.term, m.from);
      handleHeartbeat(r, m);
      return undefined;
    case 'snap':
      r.becomeFollower(m.term, m.from);
      handleSnapshotChunk(r, m);
      return undefined;
    default:
      break;
  }
  if (m.type !== respType) return undefined;
  r.trk.recordVote(m.from, !m.reject);
  const { result } = r.trk.tallyVotes();
  if (result === 'won') {
    if (r.state === 'preCandidate') {
      r.campaign('election');
    } else {
      r.becomeLeader();
      r.bcastAppend();
    }
  } else if (result === 'lost') {
    // A rejected pre-candidate or candidate goes back to follow whoever wins.
    r.becomeFollower(r.term, NONE);
  }
  return undefined;
}

/** A follower's handling of one message (votes and term changes are handled before). */
export function stepFollower(r: Raft, m: Message): ProposalDroppedError | undefined {
  switch (m.type) {
    case 'prop':
      if (r.lead === NONE) return new ProposalDroppedError('no leader is known; retry shortly');
      r.send({ ...m, to: r.lead });
      return undefined;
    case 'app':
      r.electionElapsed = 0;
      r.lead = m.from;
      handleAppendEntries(r, m);
      return undefined;
    case 'heartbeat':
      r.electionElapsed = 0;
      r.lead = m.from;
      handleHeartbeat(r, m);
      return undefined;
    case 'snap':
      r.electionElapsed = 0;
      r.lead = m.from;
      handleSnapshotChunk(r, m);
      return undefined;
    case 'transferLeader':
      if (r.lead !== NONE) r.send({ ...m, to: r.lead });
      return undefined;
    case 'timeoutNow':
      // Leadership transfer: campaign at once, skipping pre-vote and any lease.
      r.hup('transfer');
      return undefined;
    case 'readIndex':
      if (r.lead === NONE) return new ProposalDroppedError('no leader is known to serve the read; retry shortly');
      r.send({ ...m, to: r.lead });
      return undefined;
    case 'readIndexResp':
      r.readStates.push({ index: m.index, context: m.context });
      return undefined;
    default:
      return undefined;
  }
}

function handleAppendEntries(r: Raft, m: Message): void {
  if (m.index < r.raftLog.committed) {
    // Already committed here: tell the leader where we are.
    r.send(newMessage({ type: 'appResp', to: m.from, index: r.raftLog.committed }));
    return;
  }
  const last = r.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
  if (last !== undefined) {
    r.send(newMessage({ type: 'appResp', to: m.from, index: last }));
    return;
  }
  // §5.3 log matching failed: hint the last index whose term could match.
  const hint = r.raftLog.findConflictByTerm(Math.min(m.index, r.raftLog.lastIndex()), m.logTerm);
  r.send(
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

function handleHeartbeat(r: Raft, m: Message): void {
  // A heartbeat's commit is min(match, committed): the leader vouches that our log equals its own up to
  // there. A commit past our last index means we lost entries we acknowledged (our storage was wiped or
  // replaced), so the leader's view of our log is wrong and so may be its claim about the entries we still
  // hold: take no commit from this heartbeat (committing less is always safe). We answer, flagging the
  // answer: the leader probes us, our rejection below its match tells it of the loss
  // (lostAcknowledgedEntries in step-leader.ts), and the append path, which checks log matching, moves
  // our commit again.
  const lost = m.commit > r.raftLog.lastIndex();
  if (!lost) r.raftLog.commitTo(m.commit);
  // The answer below backs the leader's lease: refuse votes for an election timeout even if this node
  // stops following the leader meanwhile (e.g. the host makes it campaign), see lease.ts.
  if (r.opts.readOnlyOption !== 'safe') r.voteQuietUntil = Math.max(r.voteQuietUntil, r.ticks + r.opts.electionTick);
  // Echo the send tick: the leader's lease rests on when the heartbeat left, not when this answer arrives.
  r.send(
    newMessage({
      type: 'heartbeatResp',
      to: m.from,
      index: m.index,
      context: m.context,
      ...(lost ? { reject: true, rejectHint: r.raftLog.lastIndex() } : {}),
    }),
  );
}

/** Reassembles `snap` chunks in order; applies the snapshot only once the last chunk arrives. */
function handleSnapshotChunk(r: Raft, m: Message): void {
  const snap = m.snapshot;
  if (!snap) return;
  const cur = r.receipt;
  if (m.snapOffset === 0) {
    r.receipt = {
      from: m.from,
      term: m.term,
      index: snap.meta.index,
      snapTerm: snap.meta.term,
      chunks: [snap.data],
      received: snap.data.length,
    };
  } else if (
    cur &&
    cur.from === m.from &&
    cur.term === m.term &&
    cur.index === snap.meta.index &&
    cur.snapTerm === snap.meta.term &&
    cur.received === m.snapOffset
  ) {
    cur.chunks.push(snap.data);
    cur.received += snap.data.length;
  } else {
    r.receipt = undefined;
    r.send(newMessage({ type: 'snapResp', to: m.from, index: snap.meta.index, reject: true }));
    return;
  }
  if (!m.snapDone) return;
  const done = r.receipt as SnapshotReceipt;
  r.receipt = undefined;
  const data = new Uint8Array(done.received);
  let off = 0;
  for (const c of done.chunks) {
    data.set(c, off);
    off += c.length;
  }
  handleSnapshot(r, { meta: snap.meta, data });
}

function handleSnapshot(r: Raft, s: Snapshot): void {
  if (restore(r, s)) {
    r.send(newMessage({ type: 'appResp', to: r.lead, index: r.raftLog.lastIndex() }));
  } else {
    r.send(newMessage({ type: 'appResp', to: r.lead, index: r.raftLog.committed }));
  }
}

/** Installs a leader's snapshot unless our log already covers it; returns whether it was installed. */
function restore(r: Raft, s: Snapshot): boolean {
  if (s.meta.index <= r.raftLog.committed) return false;
  const cs = s.meta.confState;
  const all = [...cs.voters, ...cs.learners, ...cs.votersOutgoing];
  // A snapshot from a config that does not include us is not ours to install.
  if (!all.includes(r.id)) return false;
  if (r.raftLog.matchTerm(s.meta.index, s.meta.term)) {
    // We already hold this prefix: just fast-forward the commit index.
    r.raftLog.commitTo(s.meta.index);
    return false;
  }
  r.raftLog.restore(s);
  r.trk = new ProgressTracker();
  applyChangeResult(r, restoreConfig(cs, r.raftLog.lastIndex(), r.opts.maxInflightMsgs, r.opts.maxInflightBytes));
  return true;
}
