import type { LogIndex } from '@cohort/core';
import { NONE } from './message.js';
import { jointCommitted } from './quorum/joint.js';
import type { Raft } from './raft.js';

/**
 * Ticks the lease is shortened by. One covers tick granularity (a follower's
 * first tick after a heartbeat may come at once, so its election timeout can
 * end only `electionTick - 1` leader ticks after the heartbeat was sent); the
 * other covers clock drift: a follower whose ticks run faster than the
 * leader's by less than a factor (electionTick - 1) / (electionTick - 2) still
 * honours the lease for as long as the leader relies on it.
 */
export const LEASE_MARGIN_TICKS = 2;

/**
 * The leader's tick at which the lease rests: the newest heartbeat send tick
 * acknowledged by a quorum of voters (both majorities when joint), counting
 * the leader itself as acknowledging now. 0 when no quorum acknowledged one.
 */
export function leaseBase(r: Raft): number {
  return jointCommitted(r.trk.config.voters, (id) => (id === r.id ? r.ticks : r.trk.progress.get(id)?.leaseAckTick));
}

/**
 * Whether the leader may answer a read from its commit index without a
 * ReadIndex round. Every voter that answered a heartbeat refuses to vote for
 * an electionTick of its own ticks after receiving it (the §4.2.3 lease check
 * in `Raft.step`), and the heartbeat was sent no earlier than the tick it
 * carries, so no other leader can be elected while `now` stays below that tick
 * plus the election timeout, less {@link LEASE_MARGIN_TICKS}. A leader that
 * sent `timeoutNow` lets its transferee campaign past every lease, so it gives
 * the lease up for the rest of its term.
 */
export function leaseHolds(r: Raft): boolean {
  return leaseTicks(r) !== undefined;
}

/** A leader's lease as {@link RawNode.leaseRead} reports it. */
export interface LeaseRead {
  /** The commit index a read under the lease is served at (once applied). */
  index: LogIndex;
  /** The tick the lease rests on (the newest heartbeat send tick a quorum acknowledged). */
  base: number;
  /** The lease holds while the leader's tick count is below `base + span`. */
  span: number;
  /** The leader's tick count now. */
  ticks: number;
}

/**
 * The lease a read may be served under without a ReadIndex round, when one
 * holds (see {@link leaseHolds}) and the leader committed an entry of its
 * term (§6.4: only then is its commit index the latest); else undefined.
 * Needs a `readOnlyOption` other than 'safe', so that voters back leases.
 */
export function leaseRead(r: Raft): LeaseRead | undefined {
  if (r.state !== 'leader' || r.opts.readOnlyOption === 'safe') return undefined;
  if (r.raftLog.termOrZero(r.raftLog.committed) !== r.term) return undefined;
  const base = leaseTicks(r);
  if (base === undefined) return undefined;
  return { index: r.raftLog.committed, base, span: r.opts.electionTick - LEASE_MARGIN_TICKS, ticks: r.ticks };
}

/** The lease's base tick while it holds; undefined when it does not. */
function leaseTicks(r: Raft): number | undefined {
  // A quiescent leader's ticks stand still: no lease is measured by them (it wakes to serve).
  if (r.quiescent || r.leaseRevoked || r.leadTransferee !== NONE) return undefined;
  const base = leaseBase(r);
  return base > 0 && r.ticks < base + r.opts.electionTick - LEASE_MARGIN_TICKS ? base : undefined;
}
