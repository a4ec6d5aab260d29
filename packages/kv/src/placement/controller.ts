/**
 * The placement controller: a pure function from what the meta leader
 * knows (the registry and partition map, the membership view with the time
 * each member entered its state, the meta group's own configuration) to the
 * membership changes to make now. It reads no clock and keeps no state: the
 * caller passes `now` and runs it again each round, so a dropped event can
 * never hide a failure (the view is rebuilt every round).
 *
 * Each partition moves one step per round, each step one Raft membership
 * change, recorded in the map with a new epoch:
 *   a voter dead for the grace period, on a leaving node, or on a node whose
 *   disk has been full for the grace period -> add a learner on a live node;
 *   a learner on a live node, the partition at its replication factor ->
 *   replace a voter by it: promote it and remove the voter in one joint
 *   change (dead first, then leaving, then the most crowded zone, the most
 *   loaded node, the newest node), so the group never runs with one voter
 *   too many or a dead voter kept beside it (the executor retries until the
 *   learner caught up);
 *   a learner on a live node, fewer voters than the replication factor -> promote it;
 *   more voters than the replication factor -> remove one (chosen as above);
 *   a learner on a dead node -> remove it.
 * An operator's move (`move` in the map) adds its target as a learner, then
 * replaces its source by it.
 * With no repair pending, replicas are moved from the most loaded nodes to
 * the least loaded (a joined node), a few partitions at a time.
 * Targets are chosen by zone first (a zone the partition does not use yet),
 * then load, then the longest-running node, then node id.
 */
import type { NodeId } from '@cohort/core';
import { type MetaState, type NodeRecord, type PartitionEntry, votersOf } from '../meta/state.js';

/** A member's state as the failure detector has it. */
export type Liveness = 'alive' | 'suspect' | 'dead' | 'left';

/** One member of the membership view, with the time (ms) it entered that state. */
export interface MemberLiveness {
  state: Liveness;
  since: number;
  /**
   * Since when (ms) the member reports its disk full; undefined while it does
   * not. Such a node takes no new replica, and past the grace period its
   * replicas move away as a leaving node's do.
   */
  diskFullSince?: number;
}

/** The controller's settings. */
export interface PlacementConfig {
  /** How long a member stays dead (or missing) before its replicas are replaced. */
  deadGraceMs: number;
  /** Voters of the meta group at most (3 or 5). */
  metaVoters: number;
  /** Partitions being rebalanced at once at most. @default 2 */
  maxMoves?: number;
  /** The tag that spreads replicas. @default 'zone' */
  zoneTag?: string;
}

/** What the controller decides on. */
export interface PlacementInput {
  state: MetaState;
  /** The membership view by node id, rebuilt from the member list each round. */
  members: ReadonlyMap<NodeId, MemberLiveness>;
  now: number;
  /**
   * Since when the caller's membership view is complete (it joined, it leads the meta group):
   * a registered node missing from `members` counts as dead since then.
   */
  viewSince: number;
  /** The meta group's configuration as its leader has it. */
  meta: { voters: readonly NodeId[]; learners: readonly NodeId[] };
  /** Whether this node's partition detector says it is in a minority: no decision then. */
  minority: boolean;
  config: PlacementConfig;
}

/**
 * One change to make. `epoch` is the partition's epoch it was planned
 * against. A `replace` promotes the learner `node` and removes the voter
 * `remove` in one joint configuration change.
 */
export type PlacementAction =
  | { type: 'addLearner'; partition: number; epoch: number; node: NodeId; reason: string }
  | { type: 'promote'; partition: number; epoch: number; node: NodeId; reason: string }
  | { type: 'replace'; partition: number; epoch: number; node: NodeId; remove: NodeId; reason: string }
  | { type: 'remove'; partition: number; epoch: number; node: NodeId; reason: string }
  | { type: 'metaAddLearner'; node: NodeId; reason: string }
  | { type: 'metaPromote'; node: NodeId; reason: string }
  | { type: 'metaReplace'; node: NodeId; remove: NodeId; reason: string }
  | { type: 'metaRemove'; node: NodeId; reason: string };

/** How each registered node stands this round. */
interface NodeView {
  record: NodeRecord;
  /** Alive (and so a possible target when not leaving). */
  up: boolean;
  /** Dead or gone for at least the grace period: its replicas are replaced. */
  down: boolean;
  /** Leaving, or its disk full for the grace period: its replicas move away. */
  leaving: boolean;
  /** Reports its disk full: no new replica goes there. */
  diskFull: boolean;
}

/** The nodes' standing this round, by id (registered nodes only). */
export function nodeViews(input: PlacementInput): Map<NodeId, NodeView> {
  const out = new Map<NodeId, NodeView>();
  for (const record of Object.values(input.state.nodes)) {
    const m = input.members.get(record.id);
    const state: Liveness = m?.state ?? 'dead';
    const since = m?.since ?? input.viewSince;
    const up = state === 'alive';
    const down = (state === 'dead' || state === 'left') && input.now - since >= input.config.deadGraceMs;
    const fullSince = m?.diskFullSince;
    const diskFull = fullSince !== undefined;
    const drained = fullSince !== undefined && input.now - fullSince >= input.config.deadGraceMs;
    out.set(record.id, { record, up, down, leaving: record.leaving === true || drained, diskFull });
  }
  return out;
}

/** Orders candidate nodes: older first (longest running), then by id. */
function byAge(a: NodeRecord, b: NodeRecord): number {
  return a.startedAt - b.startedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Replicas per node over the whole map (voters and learners). */
function loads(state: MetaState): Map<NodeId, number> {
  const out = new Map<NodeId, number>();
  for (const id of Object.keys(state.nodes)) out.set(id, 0);
  for (const p of state.partitions) for (const r of p.replicas) out.set(r.node, (out.get(r.node) ?? 0) + 1);
  return out;
}

/** Decides this round's actions. */
export function planPlacement(input: PlacementInput): PlacementAction[] {
  if (input.minority || input.state.clusterId === '') return [];
  const views = nodeViews(input);
  const zoneTag = input.config.zoneTag ?? 'zone';
  const zoneOf = (id: NodeId): string => views.get(id)?.record.tags[zoneTag] ?? '';
  const load = loads(input.state);
  const R = input.state.replicationFactor;
  const actions: PlacementAction[] = [...planMeta(input, views)];
  const usable = (id: NodeId): boolean => {
    const v = views.get(id);
    return v?.up === true && !v.leaving && !v.diskFull;
  };
  const bad = (id: NodeId): boolean => {
    const v = views.get(id);
    return v === undefined || v.down || v.leaving;
  };

  /** The best live node to hold a new replica of `p`, if any. */
  const target = (p: PartitionEntry): NodeId | undefined => {
    const holders = new Set(p.replicas.map((r) => r.node));
    const zones = new Set(p.replicas.filter((r) => !bad(r.node)).map((r) => zoneOf(r.node)));
    const candidates = [...views.values()].filter((v) => usable(v.record.id) && !holders.has(v.record.id));
    candidates.sort(
      (a, b) =>
        Number(zones.has(zoneOf(a.record.id))) - Number(zones.has(zoneOf(b.record.id))) ||
        (load.get(a.record.id) ?? 0) - (load.get(b.record.id) ?? 0) ||
        byAge(a.record, b.record),
    );
    return candidates[0]?.record.id;
  };

  /**
   * The voter of `p` to remove when it has one too many, or when `incoming` (a learner) replaces one;
   * the incoming learner counts in its zone but is never chosen.
   */
  const victim = (p: PartitionEntry, incoming?: NodeId): NodeId => {
    const voters = votersOf(p);
    const replacing = incoming ?? '';
    // An operator's move replaces its source by its target (or removes the source once the target is a voter).
    if (p.move !== undefined && voters.includes(p.move.from) && [...voters, replacing].includes(p.move.to)) {
      return p.move.from;
    }
    const zoneCount = new Map<string, number>();
    for (const v of incoming === undefined ? voters : [...voters, incoming]) {
      zoneCount.set(zoneOf(v), (zoneCount.get(zoneOf(v)) ?? 0) + 1);
    }
    const rank = (id: NodeId): number[] => {
      const v = views.get(id);
      return [
        v === undefined || v.down ? 0 : 1,
        v?.leaving ? 0 : 1,
        v?.up ? 1 : 0,
        -(zoneCount.get(zoneOf(id)) ?? 0),
        -(load.get(id) ?? 0),
        -(v?.record.startedAt ?? 0),
      ];
    };
    const sorted = [...voters].sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i]! - rb[i]!;
      return a < b ? 1 : a > b ? -1 : 0;
    });
    return sorted[0]!;
  };

  let inFlight = 0;
  const idle: number[] = [];
  input.state.partitions.forEach((p, partition) => {
    // A Vertical Paxos partition is placed by its configuration master, not by Raft membership changes.
    if (p.engine === 'vpaxos') return;
    const { epoch } = p;
    const voters = votersOf(p);
    const learner = p.replicas.find((r) => r.role === 'learner');
    if (learner !== undefined) {
      inFlight++;
      if (bad(learner.node) && !usable(learner.node)) {
        actions.push({
          type: 'remove',
          partition,
          epoch,
          node: learner.node,
          reason: 'learner on a dead or leaving node',
        });
      } else if (usable(learner.node) && voters.length >= R) {
        // One joint change: the group never holds R + 1 voters, nor keeps a failed voter beside the new one.
        const remove = victim(p, learner.node);
        actions.push({
          type: 'replace',
          partition,
          epoch,
          node: learner.node,
          remove,
          reason: `learner ${learner.node} replaces voter ${remove}${p.move?.from === remove ? ' (operator move)' : ''}`,
        });
        load.set(remove, (load.get(remove) ?? 1) - 1);
      } else if (usable(learner.node)) {
        actions.push({
          type: 'promote',
          partition,
          epoch,
          node: learner.node,
          reason: `${voters.length} voters, ${R} wanted`,
        });
      }
      return;
    }
    if (voters.length > R) {
      inFlight++;
      const node = victim(p);
      actions.push({ type: 'remove', partition, epoch, node, reason: `${voters.length} voters, ${R} wanted` });
      load.set(node, (load.get(node) ?? 1) - 1);
      return;
    }
    const failing = voters.filter(bad);
    if (failing.length > 0 || voters.length < R) {
      const node = target(p);
      if (node !== undefined) {
        inFlight++;
        const why = failing.length > 0 ? `replaces ${failing.join(', ')}` : `${voters.length} voters, ${R} wanted`;
        actions.push({ type: 'addLearner', partition, epoch, node, reason: why });
        load.set(node, (load.get(node) ?? 0) + 1);
      }
      return;
    }
    if (p.move !== undefined) {
      const { from, to } = p.move;
      if (voters.includes(from) && !p.replicas.some((r) => r.node === to) && usable(to)) {
        inFlight++;
        actions.push({ type: 'addLearner', partition, epoch, node: to, reason: `operator move from ${from}` });
        load.set(to, (load.get(to) ?? 0) + 1);
      }
      return;
    }
    idle.push(partition);
  });

  // Rebalance: move a replica from a node above the mean to one below it, a few partitions at a time.
  const budget = (input.config.maxMoves ?? 2) - inFlight;
  if (budget <= 0) return actions;
  let moves = 0;
  const live = [...views.values()].filter((v) => usable(v.record.id)).map((v) => v.record);
  if (live.length === 0) return actions;
  for (const partition of idle) {
    if (moves >= budget) break;
    const p = input.state.partitions[partition]!;
    const holders = new Set(p.replicas.map((r) => r.node));
    const voters = votersOf(p);
    const targets = live
      .filter((n) => !holders.has(n.id))
      .sort((a, b) => (load.get(a.id) ?? 0) - (load.get(b.id) ?? 0) || byAge(a, b));
    // Sources: live voters (a node down within the grace period keeps its data), most loaded first.
    const sources = voters.filter(usable).sort((a, b) => (load.get(b) ?? 0) - (load.get(a) ?? 0) || (a < b ? 1 : -1));
    // The least loaded target that some source can give a replica to: only when it narrows the spread
    // (the source ends no lower than the target), and keeping the zones spread (the target's zone is not
    // used by the replicas that stay, unless it is the source's). Trying every source, not only the most
    // loaded: with replicas spread over every zone, a joined node can only take one from its own zone.
    let pair: { over: NodeId; under: NodeId } | undefined;
    for (const under of targets) {
      for (const over of sources) {
        if ((load.get(over) ?? 0) - (load.get(under.id) ?? 0) < 2) break;
        const stay = voters.filter((v) => v !== over);
        if (stay.some((v) => zoneOf(v) === zoneOf(under.id)) && zoneOf(under.id) !== zoneOf(over)) continue;
        pair = { over, under: under.id };
        break;
      }
      if (pair !== undefined) break;
    }
    if (pair === undefined) continue;
    const { over, under } = pair;
    actions.push({
      type: 'addLearner',
      partition,
      epoch: p.epoch,
      node: under,
      reason: `rebalance from ${over} (${load.get(over)} replicas) to ${under} (${load.get(under)})`,
    });
    load.set(under, (load.get(under) ?? 0) + 1);
    load.set(over, (load.get(over) ?? 0) - 1);
    moves++;
  }
  return actions;
}

/** The meta group's own membership: every registered live node a member, up to `metaVoters` of them voters. */
function planMeta(input: PlacementInput, views: Map<NodeId, NodeView>): PlacementAction[] {
  const { voters, learners } = input.meta;
  if (voters.length === 0) return [];
  const want = input.config.metaVoters;
  const members = new Set([...voters, ...learners]);
  const sorted = [...views.values()].sort((a, b) => byAge(a.record, b.record));
  // One change at a time: the meta group's own configuration changes through its log too.
  for (const v of sorted) {
    if (!members.has(v.record.id) && v.up)
      return [{ type: 'metaAddLearner', node: v.record.id, reason: 'registered node' }];
  }
  const healthyVoters = voters.filter((id) => views.get(id)?.down !== true && views.get(id)?.leaving !== true);
  const downVoter = voters.find((id) => views.get(id)?.down === true || views.get(id)?.leaving === true);
  if (healthyVoters.length < want) {
    const next = sorted.find((v) => learners.includes(v.record.id) && v.up && !v.leaving);
    // At its size already, the group swaps the failed voter for the learner in one joint change.
    if (next !== undefined && downVoter !== undefined && voters.length >= want) {
      return [
        {
          type: 'metaReplace',
          node: next.record.id,
          remove: downVoter,
          reason: `${healthyVoters.length} healthy voters: ${next.record.id} replaces ${downVoter}`,
        },
      ];
    }
    if (next !== undefined)
      return [{ type: 'metaPromote', node: next.record.id, reason: `${healthyVoters.length} healthy voters` }];
  }
  // A failed voter goes once a healthy one took its place (or the group stays above a quorum without it).
  if (downVoter !== undefined && voters.length > want) {
    return [{ type: 'metaRemove', node: downVoter, reason: 'voter dead or leaving' }];
  }
  const downLearner = learners.find((id) => views.get(id) === undefined || views.get(id)?.down === true);
  if (downLearner !== undefined)
    return [{ type: 'metaRemove', node: downLearner, reason: 'learner dead or deregistered' }];
  return [];
}

/**
 * Why moving a replica of `p` from `from` to `to` is refused given who is
 * alive now, or undefined: the target must be alive, and the partition must
 * keep a quorum of live voters through the joint change that replaces the
 * source by the target (among today's voters, and among the voters after).
 */
export function moveQuorumRefusal(
  p: PartitionEntry,
  partition: number,
  from: NodeId,
  to: NodeId,
  alive: (id: NodeId) => boolean,
): string | undefined {
  if (!alive(to)) return `${to} is not alive: a move needs a live target`;
  const voters = votersOf(p);
  const quorum = (n: number) => Math.floor(n / 2) + 1;
  const check = (set: NodeId[], step: string): string | undefined => {
    const live = set.filter(alive);
    if (live.length >= quorum(set.length)) return undefined;
    const down = set.filter((v) => !alive(v));
    return `moving partition ${partition} from ${from} to ${to} would leave it below a quorum ${step}: ${live.length} live voter(s) of ${set.length}, a quorum needs ${quorum(set.length)} (down: ${down.join(', ')})`;
  };
  return check(voters, 'now') ?? check([...voters.filter((v) => v !== from), to], `once ${to} replaced ${from}`);
}
