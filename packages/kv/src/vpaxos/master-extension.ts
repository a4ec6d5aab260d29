import type { NodeId } from '@cohort/core';
import { ConfigMaster, type GroupConfigState, type MasterCommand } from '@cohort/vpaxos';
import type { MetaExtension, MetaResult, MetaState, PartitionEntry } from '../meta/state.js';
import { partitionGroup } from '../routing.js';

/** The meta state's section holding the configuration master. */
export const VP_MASTER_SECTION = 'vpaxos';

/** A failure the master's decision loop reported, as the meta group recorded it. */
export interface FailureReport {
  node: NodeId;
  /** The active ballot the node failed in. */
  ballot: number;
  /** What the master saw (SWIM, missing heartbeats, a restart). */
  reason: string;
}

/** One vpaxos partition's health as the master recorded it. */
export interface VpHealth {
  /** The active configuration has fewer than f+1 acceptors: writes run on fewer copies until a replacement caught up. */
  underReplicated: boolean;
  /** The failures reported since the last activation. */
  failures: FailureReport[];
}

/** The configuration master's replicated state: the master's groups and each partition's health. */
export interface VpMasterSection {
  groups: Record<string, GroupConfigState>;
  health: Record<string, VpHealth>;
}

/** The configuration master's commands, carried by the meta group's `extCommand` entries. */
export type VpMasterCommand =
  /** A command of the master proper (newBallot, complete, activate), for partition `partition`. */
  | { op: 'master'; partition: number; command: MasterCommand }
  /** The decision loop found `node` failed in the active ballot: recorded before the failover ballot is issued. */
  | { op: 'reportFailure'; partition: number; failure: FailureReport };

/**
 * How many replicas a vpaxos partition has: f+1, for the f failures the
 * cluster's Raft partitions of `replicationFactor` (2f+1) replicas survive.
 */
export function vpaxosReplicas(replicationFactor: number): number {
  return Math.floor((Math.max(1, replicationFactor) - 1) / 2) + 1;
}

/** The master's section of `state` (empty when none was written yet). */
export function masterSection(state: Readonly<MetaState>): VpMasterSection {
  const s = state.ext[VP_MASTER_SECTION] as Partial<VpMasterSection> | undefined;
  return { groups: s?.groups ?? {}, health: s?.health ?? {} };
}

const fail = (reason: string): MetaResult => ({ ok: false, reason });

/**
 * Applies a configuration master command to the meta state, in place and
 * deterministically (every meta replica applies the same log): the pure
 * {@link ConfigMaster} restored from the section, the command, the section
 * written back; and the partition map follows the master: a ballot's new
 * acceptors become learners (their nodes start a replica), an activation
 * makes the configuration's acceptors the partition's voters, bumps its
 * epoch and records the primary as its leader.
 */
export const applyVpMaster: MetaExtension = (state, raw) => {
  const cmd = raw as VpMasterCommand;
  const entry = state.partitions[cmd.partition];
  if (entry === undefined) return fail(`no partition ${cmd.partition}`);
  if (entry.engine !== 'vpaxos') return fail(`partition ${cmd.partition} is not replicated by Vertical Paxos`);
  const group = partitionGroup(cmd.partition);
  const section = masterSection(state);
  const health = section.health[group] ?? { underReplicated: false, failures: [] };
  const f = vpaxosReplicas(state.replicationFactor) - 1;
  if (cmd.op === 'reportFailure') {
    const active = section.groups[group]?.active;
    if (active === undefined || active.ballot !== cmd.failure.ballot)
      return fail(`ballot ${cmd.failure.ballot} is not the active ballot of ${group}`);
    if (!active.acceptors.includes(cmd.failure.node))
      return fail(`${cmd.failure.node} is not an acceptor of ${group}'s ballot ${active.ballot}`);
    health.failures = [...health.failures.filter((x) => x.node !== cmd.failure.node), { ...cmd.failure }].slice(-8);
    state.ext[VP_MASTER_SECTION] = { ...section, health: { ...section.health, [group]: health } };
    return { ok: true, epoch: entry.epoch };
  }
  if (cmd.command.group !== group) return fail(`command for ${cmd.command.group} sent as partition ${cmd.partition}`);
  const master = ConfigMaster.restore({ f }, section.groups);
  const res = master.apply(cmd.command);
  if (!res.ok) return fail(res.reason);
  const g = master.state(group);
  if (res.type === 'activate') {
    health.underReplicated = res.config.acceptors.length < f + 1;
    health.failures = [];
    setReplicas(state, cmd.partition, entry, res.config.acceptors, [], res.config.primary);
  } else if (res.type === 'newBallot' && g.active !== undefined && g.next !== undefined) {
    const learners = g.next.acceptors.filter((a) => !g.active!.acceptors.includes(a));
    setReplicas(state, cmd.partition, entry, g.active.acceptors, learners, entry.leader);
  }
  state.ext[VP_MASTER_SECTION] = { groups: master.export(), health: { ...section.health, [group]: health } };
  return { ok: true, epoch: state.partitions[cmd.partition]!.epoch };
};

/** Makes the partition's replicas `voters` and `learners`; the epoch moves when they changed. */
function setReplicas(
  state: MetaState,
  index: number,
  entry: PartitionEntry,
  voters: NodeId[],
  learners: NodeId[],
  leader: NodeId | undefined,
): void {
  const replicas = [
    ...voters.map((node) => ({ node, role: 'voter' as const })),
    ...learners.map((node) => ({ node, role: 'learner' as const })),
  ];
  const same =
    replicas.length === entry.replicas.length &&
    replicas.every((r) => entry.replicas.some((o) => o.node === r.node && o.role === r.role));
  state.partitions[index] = {
    ...entry,
    replicas,
    epoch: same ? entry.epoch : entry.epoch + 1,
    ...(leader !== undefined ? { leader } : {}),
  };
}
