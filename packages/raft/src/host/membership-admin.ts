import type { ConfChangeSingle, ConfState, LogIndex, NodeId } from '@cohort/core';

/** One membership operation on a group, as an operator asks for it. */
export type MembershipChange =
  | { op: 'addLearner'; node: NodeId }
  | { op: 'promote'; node: NodeId }
  | { op: 'remove'; node: NodeId };

/** A membership change or leadership transfer refused before anything was proposed; the message says why and what to do. */
export class MembershipRefusedError extends Error {
  override readonly name = 'MembershipRefusedError';
}

/** What the leader knows when it judges a change. */
export interface MembershipView {
  /** The leader itself. */
  self: NodeId;
  confState: ConfState;
  /** Voters and learners heard from within the quorum window (the leader counts itself). */
  reachable: ReadonlySet<NodeId>;
  /** The highest index known replicated on each member. */
  match: Readonly<Record<NodeId, LogIndex>>;
  /** The leader's last log index. */
  lastIndex: LogIndex;
  /** A learner more entries than this behind the leader is not promoted. */
  maxLag: number;
}

const list = (ids: Iterable<NodeId>): string => [...ids].sort().join(', ') || 'none';

function quorumCheck(what: string, voters: NodeId[], reachable: ReadonlySet<NodeId>, leaves = 'would leave'): void {
  const up = voters.filter((v) => reachable.has(v));
  const needed = Math.floor(voters.length / 2) + 1;
  if (up.length < needed) {
    throw new MembershipRefusedError(
      `${what} ${leaves} voters ${list(voters)}, of which only ${list(up)} ${up.length === 1 ? 'is' : 'are'} reachable; ` +
        `a quorum needs ${needed}. Bring the unreachable voters back first`,
    );
  }
}

/**
 * The Raft conf change that performs `change`, or a MembershipRefusedError
 * saying why it must not run now: the node is not in the right role, the
 * configuration is joint, the change would leave fewer reachable voters than
 * a quorum, the leader would remove itself, or a learner to promote is
 * unreachable or behind.
 */
export function planMembershipChange(view: MembershipView, change: MembershipChange): ConfChangeSingle {
  return judge(view, change, false);
}

/** One change judged against `view`; `joint`: part of a joint change, whose quorums are judged as a whole. */
function judge(view: MembershipView, change: MembershipChange, joint: boolean): ConfChangeSingle {
  const { confState: cs, reachable, self } = view;
  const { node } = change;
  if (cs.votersOutgoing.length > 0) {
    throw new MembershipRefusedError(
      `a membership change is under way (joint configuration ${list(cs.votersOutgoing)} -> ${list(cs.voters)}); retry once it completes`,
    );
  }
  const isVoter = cs.voters.includes(node);
  const isLearner = cs.learners.includes(node);
  switch (change.op) {
    case 'addLearner':
      if (isVoter || isLearner) {
        throw new MembershipRefusedError(`${node} is already a ${isVoter ? 'voter' : 'learner'} of the group`);
      }
      return { type: 'addLearner', nodeId: node };
    case 'promote': {
      if (isVoter) throw new MembershipRefusedError(`${node} is already a voter`);
      if (!isLearner) {
        throw new MembershipRefusedError(
          `${node} is not a learner of the group; add it first (cohort cluster add ${node})`,
        );
      }
      if (!reachable.has(node)) {
        throw new MembershipRefusedError(
          `learner ${node} is not reachable from the leader ${self}; start it (cohort start --join ...) and retry`,
        );
      }
      const lag = view.lastIndex - (view.match[node] ?? 0);
      if (lag > view.maxLag) {
        throw new MembershipRefusedError(
          `learner ${node} is ${lag} entries behind the leader (at most ${view.maxLag} allowed); retry once it has caught up`,
        );
      }
      if (!joint) quorumCheck(`promoting ${node}`, [...cs.voters, node], reachable);
      return { type: 'addVoter', nodeId: node };
    }
    case 'remove': {
      if (!isVoter && !isLearner) throw new MembershipRefusedError(`${node} is not a member of the group`);
      if (node === self && !joint) {
        throw new MembershipRefusedError(
          `${node} leads the group; move the leadership first (cohort cluster transfer-leader <voter>), then remove it`,
        );
      }
      if (isVoter) {
        const rest = cs.voters.filter((v) => v !== node);
        if (rest.length === 0 && !joint)
          throw new MembershipRefusedError(`${node} is the last voter; a group needs one`);
        if (!joint) quorumCheck(`removing ${node}`, rest, reachable);
      }
      return { type: 'removeNode', nodeId: node };
    }
    default: {
      const never: never = change;
      throw new Error(`unknown membership change ${JSON.stringify(never)}`);
    }
  }
}

/**
 * The Raft conf changes that perform `changes` together, as one joint
 * consensus transition (§6: the old and the new voters each keep a quorum
 * throughout), or a MembershipRefusedError saying why it must not run now.
 * Each change is judged as {@link planMembershipChange} judges it alone (a
 * learner to promote must be reachable and caught up), and besides: the
 * configuration is not joint already, no node is named twice, and the
 * outgoing voters (today's) and the incoming ones (after all the changes)
 * each have a reachable quorum. Unlike a single change, the leader may
 * remove itself here: it leads the joint configuration as an outgoing voter
 * and steps down once the group left it (etcd's rule), handing off to an
 * up-to-date voter. A single change is planned as {@link planMembershipChange} does.
 */
export function planJointChange(view: MembershipView, changes: readonly MembershipChange[]): ConfChangeSingle[] {
  if (changes.length === 0) throw new MembershipRefusedError('no membership change given');
  const only = changes[0];
  if (changes.length === 1 && only !== undefined) return [planMembershipChange(view, only)];
  const { confState: cs, reachable } = view;
  const named = new Set<NodeId>();
  for (const c of changes) {
    if (named.has(c.node)) {
      throw new MembershipRefusedError(`${c.node} is named by more than one change; give each node one change`);
    }
    named.add(c.node);
  }
  // Each judged against today's configuration (the nodes differ, so no change alters another's premise);
  // quorums are judged on the whole transition below, and the leader may be among the removed.
  const ccs = changes.map((c) => judge(view, c, true));
  const incoming = new Set(cs.voters);
  for (const cc of ccs) {
    if (cc.type === 'addVoter') incoming.add(cc.nodeId);
    else incoming.delete(cc.nodeId);
  }
  const what = changes.map((c) => `${c.op} ${c.node}`).join(' + ');
  if (incoming.size === 0) throw new MembershipRefusedError(`${what} would remove every voter; a group needs one`);
  quorumCheck(what, cs.voters, reachable, 'needs a quorum of the outgoing');
  quorumCheck(what, [...incoming], reachable, 'needs a quorum of the incoming');
  return ccs;
}

/** Refuses a leadership transfer to `to` that cannot succeed, saying why. */
export function checkTransfer(view: Pick<MembershipView, 'self' | 'confState' | 'reachable'>, to: NodeId): void {
  if (to === view.self) throw new MembershipRefusedError(`${to} already leads the group`);
  if (!view.confState.voters.includes(to)) {
    throw new MembershipRefusedError(
      `${to} is not a voter (voters: ${list(view.confState.voters)}); only a voter can lead${
        view.confState.learners.includes(to) ? `: promote it first (cohort cluster promote ${to})` : ''
      }`,
    );
  }
  if (!view.reachable.has(to)) throw new MembershipRefusedError(`${to} is not reachable from the leader ${view.self}`);
}
