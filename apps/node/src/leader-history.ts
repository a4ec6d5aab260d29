import type { NodeId } from '@cohort/core';

/** What this node saw of one group's leadership. */
export interface LeaderWatermarks {
  /** How long the current leader has led, as this node knows it (ms); absent while there is none. */
  leaderForMs?: number;
  /** How long the group has had no leader this node knows of (ms); absent while there is one. */
  leaderlessForMs?: number;
  /** The last failover: from losing the previous leader to knowing the next one (ms). */
  lastFailoverMs?: number;
  /** Leader changes this node saw since it started. */
  leaderChanges: number;
}

interface Entry {
  leader: NodeId;
  /** When the current leader (or the leaderless spell) began. */
  since: number;
  /** Whether a leader was known before: a leaderless spell after one is a failover, the first election is not. */
  hadLeader: boolean;
  lastFailoverMs: number | undefined;
  changes: number;
}

/**
 * The leadership history of the groups this node replicates, from its Raft
 * host's leader changes: since when the current leader leads, and how long
 * the last failover took as this node saw it (from the moment it knew of no
 * leader, or of a new term without one, to the moment it knew the next
 * leader). A follower notices a dead leader only after its election timeout,
 * so the failover it measures starts there; the detection time before it is
 * the election timeout itself.
 */
export class LeaderHistory {
  private readonly groups = new Map<string, Entry>();

  /**
   * @param onFailover told each completed failover's duration (metrics)
   */
  constructor(public onFailover: (group: string, ms: number) => void = () => {}) {}

  /** Records that `group`'s leader is now `leader` ('' for none) at `now` (ms). */
  observe(group: string, leader: NodeId, now: number): void {
    const prev = this.groups.get(group);
    if (prev === undefined) {
      this.groups.set(group, { leader, since: now, hadLeader: leader !== '', lastFailoverMs: undefined, changes: 0 });
      return;
    }
    if (prev.leader === leader) return;
    if (leader !== '') {
      prev.changes++;
      // A leader after a leaderless spell that followed another leader ends a failover. One that
      // replaces another directly (this node saw no gap, e.g. a transfer) took no time it could see.
      if (prev.leader === '' && prev.hadLeader) {
        prev.lastFailoverMs = now - prev.since;
        this.onFailover(group, prev.lastFailoverMs);
      }
      prev.hadLeader = true;
    }
    prev.leader = leader;
    prev.since = now;
  }

  /** The watermarks of `group` at `now`; undefined for a group never observed. */
  watermarks(group: string, now: number): LeaderWatermarks | undefined {
    const e = this.groups.get(group);
    if (e === undefined) return undefined;
    const age = Math.max(0, now - e.since);
    return {
      ...(e.leader !== '' ? { leaderForMs: age } : { leaderlessForMs: age }),
      ...(e.lastFailoverMs !== undefined ? { lastFailoverMs: e.lastFailoverMs } : {}),
      leaderChanges: e.changes,
    };
  }

  /** Forgets `group` (no longer hosted here). */
  forget(group: string): void {
    this.groups.delete(group);
  }
}
