/**
 * Leader balancing by count: which voter of each partition should lead it so
 * that every node leads about as many partitions (P/N). A pure function of
 * the partition map, so every node computes the same answer and a node
 * leading a partition hands it to the assigned voter without coordination
 * (two nodes with different views could otherwise hand a partition back and
 * forth).
 */
import type { NodeId } from '@cohort/core';
import { type MetaState, votersOf } from '../meta/state.js';

/**
 * The assigned leader of each partition (by index), or undefined for a
 * partition with no voter. An operator's preferred leader (`cohort partitions
 * transfer`) is kept while it is a voter; the others go to the voter leading
 * the fewest partitions so far (leaving nodes last, then the earlier voter
 * of the partition), then assignments move from the nodes leading the most
 * to voters leading at least two fewer, until none can.
 */
export function assignLeaders(state: Readonly<MetaState>): (NodeId | undefined)[] {
  const count = new Map<NodeId, number>();
  const leaving = (id: NodeId): boolean => state.nodes[id]?.leaving === true;
  const out: (NodeId | undefined)[] = [];
  const pinned = new Set<number>();
  state.partitions.forEach((p, i) => {
    const voters = votersOf(p);
    for (const v of voters) if (!count.has(v)) count.set(v, 0);
    if (p.preferredLeader !== undefined && voters.includes(p.preferredLeader)) {
      out[i] = p.preferredLeader;
      pinned.add(i);
      count.set(p.preferredLeader, (count.get(p.preferredLeader) ?? 0) + 1);
    }
  });
  state.partitions.forEach((p, i) => {
    if (pinned.has(i)) return;
    const voters = votersOf(p);
    let best: NodeId | undefined;
    for (const v of voters) {
      if (
        best === undefined ||
        Number(leaving(v)) < Number(leaving(best)) ||
        (leaving(v) === leaving(best) && (count.get(v) ?? 0) < (count.get(best) ?? 0))
      ) {
        best = v;
      }
    }
    out[i] = best;
    if (best !== undefined) count.set(best, (count.get(best) ?? 0) + 1);
  });
  // Greedy order can leave a node two above another that shares a partition with it: move one over.
  for (let round = 0; round < state.partitions.length * 2; round++) {
    let moved = false;
    for (let i = 0; i < state.partitions.length && !moved; i++) {
      const from = out[i];
      if (from === undefined || pinned.has(i)) continue;
      for (const v of votersOf(state.partitions[i]!)) {
        if (v === from || leaving(v)) continue;
        if ((count.get(from) ?? 0) - (count.get(v) ?? 0) >= 2) {
          out[i] = v;
          count.set(from, (count.get(from) ?? 0) - 1);
          count.set(v, (count.get(v) ?? 0) + 1);
          moved = true;
          break;
        }
      }
    }
    if (!moved) break;
  }
  return out;
}
