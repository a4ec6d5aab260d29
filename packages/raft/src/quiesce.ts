import type { LogIndex, NodeId, Term } from '@cohort/core';
import { NONE } from './message.js';
import { jointVoteResult } from './quorum/joint.js';
import type { Raft } from './raft.js';

/*
 * Quiescence (as CockroachDB quiesces idle ranges): a leader whose group is fully replicated and
 * applied, with nothing in flight, stops ticking the group and tells its followers to stop too, so an
 * idle group costs no heartbeats and no timers. Ticks stop on both sides, so everything that rests on
 * ticks must stay correct while they do:
 * - lease reads: a quiescent leader serves none (leaseHolds), and waking forgets every heartbeat
 *   acknowledged before it (leaseFloorTick), so the lease is earned anew from heartbeats sent after;
 * - check-quorum: a quiescent leader serves nothing, and waking restarts the count from zero, so a
 *   leader that lost its quorum while quiescent steps down an election timeout after it wakes;
 * - vote refusal: a quiescent follower's election clock stands still, so it keeps refusing votes for
 *   as long as it heard a leader recently when it quiesced (longer than awake, never shorter); a
 *   message that wakes it lets its clock run again.
 * Any step, tick or campaign wakes a quiescent engine; the host also wakes it when the liveness source
 * says the leader (on a follower) or a follower (on the leader) is down.
 */

/** What a leader's quiesce heartbeats carry: followers holding exactly this quiesce too. */
export interface QuiesceHeartbeat {
  term: Term;
  commit: LogIndex;
  /** The other members holding the whole log (voters and learners; those down and behind are left out). */
  peers: NodeId[];
}

/**
 * Whether leader `r` may quiesce: its log is committed, durable and applied through its last
 * entry, every follower not in `down` holds it all, and no append, read, transfer or
 * membership change is in flight.
 */
export function mayQuiesce(r: Raft, down: (id: NodeId) => boolean): boolean {
  if (r.quiescent || r.state !== 'leader' || r.leadTransferee !== NONE) return false;
  if (r.msgs.length > 0 || r.readStates.length > 0 || r.pendingBroadcast !== 'none') return false;
  if (r.readOnly.size() > 0 || r.pendingReadIndexMessages.length > 0) return false;
  if (r.trk.isJoint()) return false;
  const log = r.raftLog;
  const last = log.lastIndex();
  if (log.committed !== last || log.stableIndex() !== last || log.applied !== last) return false;
  // The leader's own entry of its term is committed (it knows the commit index, §6.4).
  if (log.termOrZero(last) !== r.term) return false;
  const live = new Map<NodeId, boolean>();
  for (const [id, pr] of r.trk.progress) {
    live.set(id, id === r.id || !down(id));
    if (id === r.id) continue;
    if (pr.state === 'snapshot') return false;
    if (pr.match !== last && !down(id)) return false;
  }
  // A leader that may have lost its quorum stays awake, so check-quorum can make it step down.
  return jointVoteResult(r.trk.config.voters, live) === 'won';
}

/** Quiesces leader `r` when {@link mayQuiesce}; returns what to tell its followers, or undefined. */
export function quiesceLeader(r: Raft, down: (id: NodeId) => boolean): QuiesceHeartbeat | undefined {
  if (!mayQuiesce(r, down)) return undefined;
  r.quiescent = true;
  // Only to followers holding the whole log: a heartbeat never carries a commit index past what
  // its follower is known to hold (a follower down and behind hears from the leader when it wakes).
  const last = r.raftLog.lastIndex();
  const peers: NodeId[] = [];
  for (const [id, pr] of r.trk.progress) if (id !== r.id && pr.match === last) peers.push(id);
  return { term: r.term, commit: r.raftLog.committed, peers };
}

/**
 * A follower got a quiesce heartbeat from `from`: it quiesces when it follows `from` in `term`
 * and holds exactly `commit`, committed, durable and applied. Otherwise it returns false and
 * the host steps the heartbeat as an ordinary one (whose answer wakes the leader).
 */
export function quiesceFollower(r: Raft, from: NodeId, term: Term, commit: LogIndex): boolean {
  if (r.quiescent) return r.state === 'follower' && r.lead === from && r.term === term;
  if (r.state !== 'follower' || r.term !== term || r.lead !== from) return false;
  const log = r.raftLog;
  if (log.committed !== commit || log.lastIndex() !== commit || log.stableIndex() !== commit) return false;
  if (log.applied !== commit || r.msgs.length > 0 || r.readStates.length > 0) return false;
  // Heard from its leader just now: a woken follower counts its election timeout from here.
  r.electionElapsed = 0;
  r.quiescent = true;
  return true;
}

/** Wakes a quiescent engine (no-op otherwise); returns whether it was quiescent. */
export function wake(r: Raft): boolean {
  if (!r.quiescent) return false;
  r.quiescent = false;
  if (r.state !== 'leader') return true;
  // Heartbeats acknowledged before now say nothing of how long followers refuse votes from now on.
  r.leaseFloorTick = r.ticks;
  r.electionElapsed = 0;
  r.heartbeatElapsed = 0;
  r.forEachPeer((_, pr) => {
    pr.leaseAckTick = 0;
    // Check-quorum counts anew: a quorum must answer within an election timeout of waking.
    pr.recentActive = false;
  });
  // Wake the followers at once (their answers cannot extend the lease: sent at the floor tick).
  r.bcastHeartbeat();
  return true;
}
