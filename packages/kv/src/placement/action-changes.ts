/**
 * What a placement action means for a Raft group and for the partition map:
 * the membership changes the partition's (or the meta group's) leader makes,
 * and the replicas the map records once they are made. Pure; the meta
 * service and the tests share it so the map never drifts from the groups.
 */
import type { MembershipChange } from '@cohort/raft';
import type { Replica } from '../meta/state.js';
import type { PlacementAction } from './controller.js';

/**
 * The Raft membership changes that carry out `a`: one change, or for a
 * replacement the learner's promotion and the voter's removal together (one
 * joint configuration change).
 */
export function membershipChanges(a: PlacementAction): MembershipChange[] {
  switch (a.type) {
    case 'addLearner':
    case 'metaAddLearner':
      return [{ op: 'addLearner', node: a.node }];
    case 'promote':
    case 'metaPromote':
      return [{ op: 'promote', node: a.node }];
    case 'remove':
    case 'metaRemove':
      return [{ op: 'remove', node: a.node }];
    case 'replace':
    case 'metaReplace':
      return [
        { op: 'promote', node: a.node },
        { op: 'remove', node: a.remove },
      ];
    default: {
      const never: never = a;
      throw new Error(`unknown placement action ${JSON.stringify(never)}`);
    }
  }
}

/** The replicas `replicas` become once `changes` are made (a new list; the input is not changed). */
export function replicasAfter(replicas: readonly Replica[], changes: readonly MembershipChange[]): Replica[] {
  let out = replicas.map((r) => ({ ...r }));
  for (const c of changes) {
    if (c.op === 'addLearner') out.push({ node: c.node, role: 'learner' });
    else if (c.op === 'promote') out = out.map((r) => (r.node === c.node ? { node: r.node, role: 'voter' } : r));
    else out = out.filter((r) => r.node !== c.node);
  }
  return out;
}

/**
 * Of `changes`, those the group's configuration (`voters`, `learners`) does
 * not show made yet: an executor asked again (its answer lost, or the meta
 * leader replaced) makes only what is left.
 */
export function changesLeft(
  changes: readonly MembershipChange[],
  voters: readonly string[],
  learners: readonly string[],
): MembershipChange[] {
  return changes.filter((c) => {
    const voter = voters.includes(c.node);
    const learner = learners.includes(c.node);
    if (c.op === 'addLearner') return !voter && !learner;
    if (c.op === 'promote') return !voter;
    return voter || learner;
  });
}

/** A Raft group's configuration as its leader has it (`voters`: the incoming ones while joint). */
export interface GroupConfig {
  voters: readonly string[];
  learners: readonly string[];
}

/** Whether the replicas `replicas` name the configuration `config` (same voters, same learners). */
export function sameConfig(replicas: readonly Replica[], config: GroupConfig): boolean {
  const of = (role: Replica['role']) =>
    replicas
      .filter((r) => r.role === role)
      .map((r) => r.node)
      .sort()
      .join(',');
  return of('voter') === [...config.voters].sort().join(',') && of('learner') === [...config.learners].sort().join(',');
}

/**
 * The replicas that name `config`, in the order of `before` for the nodes it
 * keeps (with their role now), then the new voters and learners.
 */
export function replicasOf(before: readonly Replica[], config: GroupConfig): Replica[] {
  const role = (node: string): Replica['role'] | undefined =>
    config.voters.includes(node) ? 'voter' : config.learners.includes(node) ? 'learner' : undefined;
  const out: Replica[] = [];
  for (const r of before) {
    const now = role(r.node);
    if (now !== undefined) out.push({ node: r.node, role: now });
  }
  for (const node of [...config.voters, ...config.learners]) {
    if (!out.some((r) => r.node === node)) out.push({ node, role: role(node)! });
  }
  return out;
}
