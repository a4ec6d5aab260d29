import type { NodeId } from '@cohort/core';
import type { MetaState } from '../meta/state.js';

/**
 * The node that should receive a replacement of partition `partition`'s
 * replica when an operator forces one without naming a target: a live node
 * that is not leaving and holds no replica of the partition, in a zone the
 * partition's other replicas do not use if there is one, then the least
 * loaded, then the longest running. Undefined when no node qualifies.
 */
export function replacementTarget(
  state: MetaState,
  partition: number,
  replaced: NodeId,
  alive: (id: NodeId) => boolean,
  zoneTag = 'zone',
): NodeId | undefined {
  const p = state.partitions[partition];
  if (p === undefined) return undefined;
  const holders = new Set(p.replicas.map((r) => r.node));
  const zone = (id: NodeId): string => state.nodes[id]?.tags[zoneTag] ?? '';
  const used = new Set(p.replicas.filter((r) => r.node !== replaced).map((r) => zone(r.node)));
  const load = new Map<NodeId, number>();
  for (const q of state.partitions) for (const r of q.replicas) load.set(r.node, (load.get(r.node) ?? 0) + 1);
  const score = (id: NodeId): [number, number, number] => [
    used.has(zone(id)) ? 1 : 0,
    load.get(id) ?? 0,
    state.nodes[id]?.startedAt ?? 0,
  ];
  const candidates = Object.values(state.nodes)
    .filter((n) => !holders.has(n.id) && !n.leaving && alive(n.id))
    .map((n) => n.id)
    .sort((a, b) => {
      const [sa, sb] = [score(a), score(b)];
      return sa[0] - sb[0] || sa[1] - sb[1] || sa[2] - sb[2] || (a < b ? -1 : a > b ? 1 : 0);
    });
  return candidates[0];
}
