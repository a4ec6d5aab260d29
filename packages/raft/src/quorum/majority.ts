import type { LogIndex, NodeId } from '@cohort/core';

/** Outcome of an election tally. */
export type VoteResult = 'pending' | 'lost' | 'won';

/** Stands for "no constraint" so that an empty half of a joint config never holds back the other. */
export const INDEX_MAX = Number.MAX_SAFE_INTEGER;

/**
 * The highest index acknowledged by a majority of `voters` (§5.3: an entry is
 * committed once a majority stores it). An empty voter set commits everything
 * so that joint configurations can take the minimum of both halves.
 */
export function majorityCommitted(voters: ReadonlySet<NodeId>, acked: (id: NodeId) => LogIndex | undefined): LogIndex {
  if (voters.size === 0) return INDEX_MAX;
  // Highest first, by insertion: a handful of voters, on every acknowledgement the leader takes.
  const indexes: LogIndex[] = [];
  for (const id of voters) {
    const v = acked(id) ?? 0;
    let i = indexes.length;
    indexes.push(v);
    for (; i > 0 && (indexes[i - 1] as LogIndex) < v; i--) indexes[i] = indexes[i - 1] as LogIndex;
    indexes[i] = v;
  }
  // The (n/2+1)-th highest index is stored on a majority.
  return indexes[Math.floor(voters.size / 2)] ?? 0;
}

/** Tallies `votes` (true = granted) over `voters`: won on a majority of grants, lost once a majority is out of reach. */
export function majorityVoteResult(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.size === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(voters.size / 2) + 1;
  if (granted >= q) return 'won';
  if (granted + missing >= q) return 'pending';
  return 'lost';
}
