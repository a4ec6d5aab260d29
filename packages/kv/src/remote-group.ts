import { type NodeId, NotLeaderError, type ReplicatedGroup } from '@cohort/core';

/**
 * A partition this node holds no replica of, as a group the KV service
 * forwards every request of: to the leader it is told of, else to a live
 * replica (the first alive in the map's order), which serves it when it
 * leads and forwards it to its leader otherwise (see `KvService.serveForwarded`).
 */
export function remoteGroup(
  group: string,
  replicasOf: () => NodeId[],
  alive: (id: NodeId) => boolean,
  hint: () => { leader: NodeId } | undefined,
): ReplicatedGroup {
  const refuse = (): Promise<never> =>
    Promise.reject(new NotLeaderError(undefined, undefined, `this node holds no replica of ${group}`));
  return {
    id: group,
    propose: refuse,
    read: refuse,
    status: () => ({
      group,
      role: 'follower',
      term: 0,
      leader: hint()?.leader ?? replicasOf().find(alive) ?? replicasOf()[0] ?? '',
      commit: 0,
      applied: 0,
    }),
  };
}
