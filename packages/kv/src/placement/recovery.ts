import type { NodeId } from '@cohort/core';
import { type MetaState, votersOf } from '../meta/state.js';
import type { Liveness } from './controller.js';

/**
 * The plan of an unsafe recovery: a Raft partition that lost its quorum for
 * good is rebuilt from its most up-to-date surviving replica, which becomes
 * its only voter (placement then adds replicas back up to the replication
 * factor). Pure: the caller gathers each live replica's position and who is
 * alive, and carries the plan out.
 */

/** A live replica's position in the partition's log, as that replica reports it. */
export interface ReplicaPosition {
  node: NodeId;
  /** Its log's last index. */
  lastIndex: number;
  /** Its state machine's applied index. */
  applied: number;
  /** The commit index it knows. */
  commit: number;
  term: number;
  /** The leader it knows now ('' or absent: none). */
  leader?: NodeId;
}

/** Why a recovery is refused (wire codes). */
export const RecoveryRefusal = {
  /** No such partition. */
  NoPartition: 'NO_PARTITION',
  /** A Vertical Paxos partition: its configuration master reconfigures it from a surviving replica. */
  Vpaxos: 'VPAXOS_PARTITION',
  /** A quorum of its voters is not known dead: it may elect a leader by itself, nothing is lost by waiting. */
  QuorumAlive: 'QUORUM_ALIVE',
  /** A live replica knows a leader of the partition: it is not lost. */
  LeaderKnown: 'LEADER_KNOWN',
  /** The survivor asked for is not a live replica that answered. */
  SurvivorNotLive: 'SURVIVOR_NOT_LIVE',
  /** No live replica answered: nothing to rebuild from. */
  NoSurvivor: 'NO_SURVIVOR',
} as const;
export type RecoveryRefusal = (typeof RecoveryRefusal)[keyof typeof RecoveryRefusal];

/** What a recovery would do. */
export interface RecoveryPlan {
  partition: number;
  /** The partition's epoch the plan was made against. */
  epoch: number;
  /** Its voters in the map. */
  voters: NodeId[];
  /** Its replicas (voters and learners) that are not alive: they are dropped. */
  lost: NodeId[];
  /** The live replicas' positions, most up to date first. */
  live: ReplicaPosition[];
  /** The replica the partition is rebuilt from: it becomes the only voter. */
  survivor: ReplicaPosition;
  /** What may be lost, said plainly. */
  dataLoss: string;
}

/** A plan, or why there is none. */
export type RecoveryDecision = { ok: true; plan: RecoveryPlan } | { ok: false; code: RecoveryRefusal; reason: string };

/** Most up-to-date first: the longest log, then the most applied, then node id. */
function byPosition(a: ReplicaPosition, b: ReplicaPosition): number {
  return b.lastIndex - a.lastIndex || b.applied - a.applied || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0);
}

/**
 * Plans the unsafe recovery of partition `partition`. `positions`: what the
 * live replicas reported (replicas that did not answer count as lost);
 * `liveness`: each node's state as the failure detector has it; `from`: the
 * survivor an operator picked, else the most up-to-date one. Refused when
 * a quorum of the partition's voters is not known dead (a suspect may come
 * back and lead), a live replica knows a leader, the partition is
 * replicated by Vertical Paxos, or the survivor is not a live replica.
 */
export function planRecovery(
  state: Readonly<MetaState>,
  partition: number,
  positions: readonly ReplicaPosition[],
  liveness: (id: NodeId) => Liveness,
  from?: NodeId,
): RecoveryDecision {
  const alive = (id: NodeId): boolean => liveness(id) === 'alive';
  const down = (id: NodeId): boolean => liveness(id) === 'dead' || liveness(id) === 'left';
  const p = state.partitions[partition];
  if (p === undefined) {
    return {
      ok: false,
      code: RecoveryRefusal.NoPartition,
      reason: `partition ${partition} does not exist: this cluster has ${state.partitions.length}`,
    };
  }
  if (p.engine === 'vpaxos') {
    return {
      ok: false,
      code: RecoveryRefusal.Vpaxos,
      reason: `partition ${partition} is replicated by Vertical Paxos: its configuration master reconfigures it from any surviving replica`,
    };
  }
  const voters = votersOf(p);
  const quorum = Math.floor(voters.length / 2) + 1;
  const liveVoters = voters.filter((id) => !down(id));
  if (liveVoters.length >= quorum) {
    const suspect = liveVoters.filter((id) => !alive(id));
    return {
      ok: false,
      code: RecoveryRefusal.QuorumAlive,
      reason: `partition ${partition} still has a quorum of voters not known dead (${liveVoters.join(', ')} of ${voters.join(', ')}; a quorum needs ${quorum}${suspect.length > 0 ? `; suspect: ${suspect.join(', ')}` : ''}): it elects a leader by itself; replace a dead replica with cohort partitions replace`,
    };
  }
  const replicas = p.replicas.map((r) => r.node);
  const live = positions.filter((x) => replicas.includes(x.node) && alive(x.node)).sort(byPosition);
  // A replica leading itself either holds a quorum of live voters (refused above) or leads the membership a
  // recovery already forced (asked again after the map could not record it).
  const led = live.find((x) => x.leader !== undefined && x.leader !== '' && x.leader !== x.node);
  if (led !== undefined) {
    return {
      ok: false,
      code: RecoveryRefusal.LeaderKnown,
      reason: `${led.node} knows a leader of partition ${partition}, ${led.leader}: it is not lost; if that leader is gone for good, retry once ${led.node} no longer hears from it (an election timeout)`,
    };
  }
  const liveIds = new Set(live.map((x) => x.node));
  const lost = replicas.filter((id) => !liveIds.has(id));
  const survivor = from === undefined ? live[0] : live.find((x) => x.node === from);
  if (survivor === undefined) {
    if (from !== undefined) {
      return {
        ok: false,
        code: RecoveryRefusal.SurvivorNotLive,
        reason: `${from} is not a live replica of partition ${partition} that answered (live replicas: ${[...liveIds].join(', ') || 'none'}; replicas: ${replicas.join(', ')})`,
      };
    }
    return {
      ok: false,
      code: RecoveryRefusal.NoSurvivor,
      reason: `no live replica of partition ${partition} answered (replicas: ${replicas.join(', ')}): there is nothing to rebuild it from; start one of them`,
    };
  }
  const tail =
    survivor.lastIndex > survivor.commit
      ? `; its entries ${survivor.commit + 1}..${survivor.lastIndex}, not known committed, become committed`
      : '';
  return {
    ok: true,
    plan: {
      partition,
      epoch: p.epoch,
      voters,
      lost,
      live,
      survivor,
      dataLoss: `writes the lost replicas (${lost.join(', ')}) acknowledged after index ${survivor.lastIndex} of ${survivor.node}'s log may be gone for good${tail}`,
    },
  };
}
