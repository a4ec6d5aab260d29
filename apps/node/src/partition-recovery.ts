import { type Logger, type NodeId, UnavailableError } from '@cohort/core';
import {
  type Liveness,
  type MetaService,
  type MetaState,
  type RecoveryPlan,
  RecoveryRefusal,
  type Replica,
  type ReplicaPosition,
  partitionGroup,
  planRecovery,
} from '@cohort/kv';
import type { RaftHost } from '@cohort/raft';
import { RecoveryRefusedError } from './ops-routes.js';

/** What an unsafe recovery did, on the survivor. */
export interface RecoveryDone {
  partition: number;
  done: true;
  survivor: NodeId;
  /** The replicas dropped from the partition. */
  lost: NodeId[];
  /** The term the survivor leads the partition in. */
  term: number;
  /** The survivor's last log index before: writes the lost replicas committed past it are gone. */
  lastIndex: number;
  /** The commit index the survivor knew before: its entries after it were committed by fiat. */
  commit: number;
  /** The partition's epoch with the new configuration recorded. */
  epoch: number;
  /** Whether the membership was forced now (false: it already was, a retry only recorded it). */
  forced: boolean;
  dataLoss: string;
}

/** What the recovery needs of the node. */
export interface RecoveryDeps {
  self: NodeId;
  host: RaftHost;
  meta: MetaService;
  log: Logger;
  /** `id`'s state as the failure detector has it (this node is alive; an unknown node dead). */
  liveness: (id: NodeId) => Liveness;
  /** A node's HTTP address (`host:port`), if known. */
  httpOf: (id: NodeId) => string | undefined;
  scheme: 'http' | 'https';
}

/** This node's position in partition `index`'s log, when it hosts a Raft replica of it. */
function localPosition(d: RecoveryDeps, index: number): ReplicaPosition | undefined {
  const group = partitionGroup(index);
  if (!d.host.groupIds().includes(group)) return undefined;
  const s = d.host.status(group);
  return { node: d.self, lastIndex: s.lastIndex, applied: s.applied, commit: s.commit, term: s.term, leader: s.leader };
}

/** Asks `id` for its position in partition `index`'s log (its `GET /v1/partitions`); undefined when it does not answer. */
async function remotePosition(
  d: RecoveryDeps,
  id: NodeId,
  index: number,
  authorization: string | undefined,
): Promise<ReplicaPosition | undefined> {
  const address = d.httpOf(id);
  if (address === undefined) return undefined;
  try {
    const res = await fetch(`${d.scheme}://${address}/v1/partitions`, {
      headers: authorization !== undefined ? { authorization } : {},
      signal: AbortSignal.timeout(2000),
    });
    if (!res.ok) return undefined;
    const body = (await res.json()) as {
      partitions?: {
        partition: number;
        local: boolean;
        lastIndex?: number;
        applied?: number;
        commit?: number;
        term?: number;
        leader?: string;
      }[];
    };
    const p = body.partitions?.find((x) => x.partition === index && x.local);
    if (p?.lastIndex === undefined) return undefined;
    return {
      node: id,
      lastIndex: p.lastIndex,
      applied: p.applied ?? 0,
      commit: p.commit ?? 0,
      term: p.term ?? 0,
      leader: p.leader ?? '',
    };
  } catch {
    return undefined;
  }
}

/**
 * Plans the unsafe recovery of partition `index` from what its live
 * replicas report now (see `planRecovery`); throws RecoveryRefusedError
 * saying why there is none.
 */
export async function planPartitionRecovery(
  d: RecoveryDeps,
  index: number,
  from: NodeId | undefined,
  authorization: string | undefined,
): Promise<RecoveryPlan> {
  const state = d.meta.state as MetaState;
  if (state.clusterId === '')
    throw new UnavailableError('the cluster is not founded yet (its meta group has no map); retry shortly');
  const entry = state.partitions[index];
  const live = (entry?.replicas ?? []).map((r) => r.node).filter((id) => d.liveness(id) === 'alive');
  const positions = await Promise.all(
    live.map((id) =>
      id === d.self ? Promise.resolve(localPosition(d, index)) : remotePosition(d, id, index, authorization),
    ),
  );
  const decision = planRecovery(
    state,
    index,
    positions.filter((p): p is ReplicaPosition => p !== undefined),
    d.liveness,
    from,
  );
  if (!decision.ok) throw new RecoveryRefusedError(decision.code, decision.reason);
  return decision.plan;
}

/**
 * On the survivor: makes it the only voter of the partition without
 * consensus (RaftHost.forceConfiguration), then records the new
 * configuration in the meta group (a new epoch), from which placement adds
 * replicas back. A retry after the record failed only records it.
 */
export async function recoverPartitionHere(d: RecoveryDeps, plan: RecoveryPlan): Promise<RecoveryDone> {
  const { partition } = plan;
  const group = partitionGroup(partition);
  if (plan.survivor.node !== d.self || !d.host.groupIds().includes(group)) {
    throw new RecoveryRefusedError(
      RecoveryRefusal.SurvivorNotLive,
      `${d.self} hosts no replica of partition ${partition} to rebuild it from`,
    );
  }
  d.log.warn(
    'UNSAFE RECOVERY: partition rebuilt from this replica alone, without consensus; acknowledged writes may be lost',
    {
      partition,
      survivor: d.self,
      lost: plan.lost,
      lastIndex: plan.survivor.lastIndex,
      applied: plan.survivor.applied,
      commit: plan.survivor.commit,
      dataLoss: plan.dataLoss,
    },
  );
  const f = await d.host.forceConfiguration(group, [d.self]);
  let epoch: number | undefined;
  let why = '';
  // Placement may reconfigure the partition meanwhile (a learner added to the forced membership): record what the
  // group has as each attempt starts.
  for (let attempt = 0; attempt < 3 && epoch === undefined; attempt++) {
    const now = d.host.status(group);
    const replicas: Replica[] = [
      ...now.voters.map((node) => ({ node, role: 'voter' as const })),
      ...now.learners.map((node) => ({ node, role: 'learner' as const })),
    ];
    const entry = d.meta.state.partitions[partition]!;
    const res = await d.meta
      .propose({ type: 'reconfigure', partition, epoch: entry.epoch, replicas })
      .catch((err: Error) => ({ ok: false as const, reason: err.message }));
    if (res.ok) epoch = res.epoch ?? entry.epoch + 1;
    else why = res.reason;
  }
  if (epoch === undefined) {
    throw new UnavailableError(
      `partition ${partition} now has ${d.self} as its only voter, but the map could not record it (${why}); run the recovery again to record it`,
    );
  }
  d.log.warn('unsafe recovery recorded: placement adds replicas back', {
    partition,
    survivor: d.self,
    epoch,
    term: f.term,
    previousLastIndex: f.previousLastIndex,
    previousCommit: f.previousCommit,
  });
  return {
    partition,
    done: true,
    survivor: d.self,
    lost: plan.lost,
    term: d.host.status(group).term,
    lastIndex: f.previousLastIndex,
    commit: f.previousCommit,
    epoch,
    forced: f.forced,
    dataLoss: plan.dataLoss,
  };
}
