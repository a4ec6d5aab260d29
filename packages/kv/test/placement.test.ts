import { describe, expect, it } from 'vitest';
import { type MetaState, type NodeRecord, applyMeta, emptyMeta, votersOf } from '../src/meta/state.js';
import {
  changesLeft,
  membershipChanges,
  replicasAfter,
  replicasOf,
  sameConfig,
} from '../src/placement/action-changes.js';
import {
  type MemberLiveness,
  type PlacementAction,
  type PlacementInput,
  moveQuorumRefusal,
  planPlacement,
} from '../src/placement/controller.js';
import { assignLeaders } from '../src/placement/leaders.js';
import { replacementTarget } from '../src/placement/replacement.js';

const node = (id: string, startedAt: number, tags: Record<string, string> = {}): NodeRecord => ({
  id,
  peerAddress: `127.0.0.1:${7000 + startedAt}`,
  tags,
  startedAt,
});

/** A bootstrapped state: `ids` registered (started in order), partitions placed round-robin. */
function cluster(
  ids: string[],
  partitions: number,
  r = 3,
  tags: Record<string, Record<string, string>> = {},
): MetaState {
  const s = emptyMeta();
  const placed = Array.from({ length: partitions }, (_, p) =>
    Array.from({ length: r }, (_, k) => ids[(p + k) % ids.length]!),
  );
  const res = applyMeta(s, {
    type: 'bootstrap',
    clusterId: 'c1',
    replicationFactor: r,
    nodes: ids.map((id, i) => node(id, i + 1, tags[id] ?? {})),
    partitions: placed,
  });
  expect(res.ok).toBe(true);
  return s;
}

const alive = (ids: string[], since = 0): Map<string, MemberLiveness> =>
  new Map(ids.map((id) => [id, { state: 'alive' as const, since }]));

function input(
  state: MetaState,
  members: Map<string, MemberLiveness>,
  over: Partial<PlacementInput> = {},
): PlacementInput {
  const ids = Object.keys(state.nodes).sort();
  return {
    state,
    members,
    now: 100_000,
    viewSince: 0,
    meta: { voters: ids.slice(0, 3), learners: ids.slice(3) },
    minority: false,
    config: { deadGraceMs: 5000, metaVoters: 3 },
    ...over,
  };
}

/**
 * Applies an action to the map as the executor records it once Raft made the change, checking that a
 * partition never records more voters than its replication factor (a replacement is one joint change).
 */
function record(state: MetaState, a: PlacementAction): void {
  if (!('partition' in a)) return;
  const p = state.partitions[a.partition]!;
  const replicas = replicasAfter(p.replicas, membershipChanges(a));
  expect(replicas.filter((r) => r.role === 'voter').length).toBeLessThanOrEqual(
    Math.max(state.replicationFactor, votersOf(p).length),
  );
  const res = applyMeta(state, { type: 'reconfigure', partition: a.partition, epoch: a.epoch, replicas });
  expect(res).toMatchObject({ ok: true });
}

/** Runs rounds until no partition action is left (at most `rounds`), applying each. */
function settle(state: MetaState, make: () => PlacementInput, rounds = 50): number {
  for (let i = 0; i < rounds; i++) {
    const acts = planPlacement(make()).filter((a) => !a.type.startsWith('meta'));
    if (acts.length === 0) return i;
    for (const a of acts) record(state, a);
  }
  throw new Error('placement did not settle');
}

type PartitionAction = Extract<PlacementAction, { partition: number }>;
const partitionActions = (acts: PlacementAction[]): PartitionAction[] =>
  acts.filter((a): a is PartitionAction => 'partition' in a);

describe('meta state', () => {
  it('bootstraps once, registers nodes and fences reconfigurations by epoch', () => {
    const s = cluster(['a', 'b', 'c'], 4);
    expect(
      applyMeta(s, { type: 'bootstrap', clusterId: 'x', replicationFactor: 3, nodes: [], partitions: [] }),
    ).toMatchObject({
      ok: false,
    });
    expect(s.partitions.map((p) => p.epoch)).toEqual([1, 1, 1, 1]);
    const replicas = [...s.partitions[0]!.replicas, { node: 'd', role: 'learner' as const }];
    expect(applyMeta(s, { type: 'reconfigure', partition: 0, epoch: 1, replicas })).toEqual({ ok: true, epoch: 2 });
    // A change planned against the old epoch is refused and changes nothing.
    expect(applyMeta(s, { type: 'reconfigure', partition: 0, epoch: 1, replicas: [] })).toMatchObject({ ok: false });
    expect(s.partitions[0]!.replicas).toHaveLength(4);
    expect(applyMeta(s, { type: 'reconfigure', partition: 0, epoch: 2, replicas: [] })).toMatchObject({ ok: false });
  });

  it('refuses a node id registered by another peer, updates a re-registering node', () => {
    const s = cluster(['a', 'b', 'c'], 1);
    expect(applyMeta(s, { type: 'register', node: { ...node('d', 50), peerId: 'P1' } }).ok).toBe(true);
    expect(applyMeta(s, { type: 'register', node: { ...node('d', 60), peerId: 'P2' } })).toMatchObject({ ok: false });
    expect(applyMeta(s, { type: 'register', node: { ...node('d', 70), peerId: 'P1', http: 'h' } }).ok).toBe(true);
    expect(s.nodes.d).toMatchObject({ startedAt: 70, http: 'h' });
    // A registration that names no peer id keeps the pinned one.
    expect(applyMeta(s, { type: 'register', node: node('d', 80) }).ok).toBe(true);
    expect(s.nodes.d).toMatchObject({ startedAt: 80, peerId: 'P1' });
    expect(applyMeta(s, { type: 'register', node: { ...node('d', 90), peerId: 'P2' } })).toMatchObject({ ok: false });
    expect(applyMeta(s, { type: 'deregister', id: 'a' })).toMatchObject({ ok: false });
    expect(applyMeta(s, { type: 'deregister', id: 'd' }).ok).toBe(true);
  });

  it('keeps sections of other users and refuses unknown commands', () => {
    const s = emptyMeta();
    expect(applyMeta(s, { type: 'ext', section: 'vpaxos', value: { n: 1 } }).ok).toBe(true);
    expect(s.ext.vpaxos).toEqual({ n: 1 });
    expect(applyMeta(s, { type: 'nope' } as never)).toMatchObject({ ok: false });
  });
});

describe('placement controller', () => {
  it('does nothing in a healthy, balanced cluster', () => {
    const s = cluster(['a', 'b', 'c', 'd', 'e'], 10);
    expect(planPlacement(input(s, alive(['a', 'b', 'c', 'd', 'e'])))).toEqual([]);
  });

  it('waits for the grace period before replacing a dead node', () => {
    const s = cluster(['a', 'b', 'c', 'd', 'e'], 5);
    const members = alive(['a', 'b', 'c', 'd']);
    members.set('e', { state: 'dead', since: 97_000 });
    expect(partitionActions(planPlacement(input(s, members)))).toEqual([]);
    members.set('e', { state: 'suspect', since: 0 });
    expect(partitionActions(planPlacement(input(s, members)))).toEqual([]);
  });

  it('replaces a dead node: learner on a live node, then one joint change promotes it and removes the dead replica', () => {
    const s = cluster(['a', 'b', 'c', 'd', 'e'], 5);
    const members = alive(['a', 'b', 'c', 'd']);
    members.set('e', { state: 'dead', since: 90_000 });
    const first = partitionActions(planPlacement(input(s, members)));
    const holding = s.partitions.flatMap((p, i) => (p.replicas.some((r) => r.node === 'e') ? [i] : []));
    expect(first.map((a) => [a.type, a.partition])).toEqual(holding.map((i) => ['addLearner', i]));
    for (const a of first) expect(a.node).not.toBe('e');
    for (const a of first) record(s, a);
    const second = partitionActions(planPlacement(input(s, members)));
    expect(second.map((a) => [a.type, a.partition, a.type === 'replace' ? a.remove : ''])).toEqual(
      holding.map((i) => ['replace', i, 'e']),
    );
    // Promote and remove in one Raft change: a joint configuration, never four voters on their own.
    const learner = first[0]!.node;
    expect(membershipChanges(second[0]!)).toEqual([
      { op: 'promote', node: learner },
      { op: 'remove', node: 'e' },
    ]);
    settle(s, () => input(s, members));
    for (const [i, p] of s.partitions.entries()) {
      expect(p.replicas.map((r) => r.node)).not.toContain('e');
      expect(p.replicas.filter((r) => r.role === 'voter')).toHaveLength(3);
      // One epoch for the learner, one for the replacement.
      expect(p.epoch).toBe(holding.includes(i) ? 3 : 1);
    }
  });

  it('treats a registered node missing from the member list as dead (a dropped event hides nothing)', () => {
    const s = cluster(['a', 'b', 'c', 'd'], 4);
    // Not before the view is older than the grace period (a fresh leader's view may lack members).
    expect(partitionActions(planPlacement(input(s, alive(['a', 'b', 'c']), { viewSince: 98_000 })))).toEqual([]);
    const acts = partitionActions(planPlacement(input(s, alive(['a', 'b', 'c']))));
    expect(acts.length).toBeGreaterThan(0);
    expect(acts.every((a) => a.type === 'addLearner' && a.node !== 'd')).toBe(true);
  });

  it('makes no decision in a minority', () => {
    const s = cluster(['a', 'b', 'c', 'd', 'e'], 5);
    const members = alive(['a', 'b']);
    expect(planPlacement(input(s, members, { minority: true }))).toEqual([]);
  });

  it('does not promote a learner on a node that died, removes it instead', () => {
    const s = cluster(['a', 'b', 'c', 'd'], 1);
    record(s, { type: 'addLearner', partition: 0, epoch: 1, node: 'd', reason: '' });
    const members = alive(['a', 'b', 'c']);
    members.set('d', { state: 'dead', since: 0 });
    expect(partitionActions(planPlacement(input(s, members)))).toMatchObject([{ type: 'remove', node: 'd', epoch: 2 }]);
    members.set('d', { state: 'alive', since: 0 });
    expect(partitionActions(planPlacement(input(s, members)))).toMatchObject([{ type: 'replace', node: 'd' }]);
    // Below the replication factor (a voter removed meanwhile), a live learner is promoted alone.
    record(s, { type: 'remove', partition: 0, epoch: 2, node: 'c', reason: '' });
    expect(partitionActions(planPlacement(input(s, members)))).toMatchObject([
      { type: 'promote', node: 'd', epoch: 3 },
    ]);
  });

  it('spreads replicas across zones when replacing', () => {
    const tags = { a: { zone: 'z1' }, b: { zone: 'z2' }, c: { zone: 'z3' }, d: { zone: 'z1' }, e: { zone: 'z3' } };
    const s = cluster(['a', 'b', 'c', 'd', 'e'], 1, 3, tags);
    // Partition 0 is on a (z1), b (z2), c (z3); c dies: e (z3) keeps three zones, d (z1) would not.
    const members = alive(['a', 'b', 'd', 'e']);
    members.set('c', { state: 'dead', since: 0 });
    expect(partitionActions(planPlacement(input(s, members)))).toMatchObject([{ type: 'addLearner', node: 'e' }]);
  });

  it('breaks ties by the longest-running node, then node id', () => {
    const s = cluster(['a', 'b', 'c', 'd', 'e'], 1);
    s.nodes.d!.startedAt = 10;
    s.nodes.e!.startedAt = 9;
    const members = alive(['a', 'b', 'd', 'e']);
    members.set('c', { state: 'left', since: 0 });
    expect(partitionActions(planPlacement(input(s, members)))).toMatchObject([{ node: 'e' }]);
    s.nodes.d!.startedAt = 9;
    expect(partitionActions(planPlacement(input(s, members)))).toMatchObject([{ node: 'd' }]);
  });

  it('rebalances replicas towards a joined node, a few partitions at a time', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const s = cluster(ids, 16);
    applyMeta(s, { type: 'register', node: node('f', 100) });
    const all = [...ids, 'f'];
    const first = partitionActions(planPlacement(input(s, alive(all))));
    expect(first.length).toBe(2);
    expect(first.every((a) => a.type === 'addLearner' && a.node === 'f')).toBe(true);
    settle(s, () => input(s, alive(all)), 200);
    const count = new Map<string, number>();
    for (const p of s.partitions) {
      expect(p.replicas.filter((r) => r.role === 'voter')).toHaveLength(3);
      for (const r of p.replicas) count.set(r.node, (count.get(r.node) ?? 0) + 1);
    }
    // 48 replicas over 6 nodes: 8 each, within one.
    for (const id of all) expect(Math.abs((count.get(id) ?? 0) - 8)).toBeLessThanOrEqual(1);
  });

  it('rebalances towards joined nodes when the replicas already cover every zone (from a source in the target zone)', () => {
    // Three nodes in three zones hold every replica; d and e join in zones z1 and z2. The most loaded
    // voter of each partition may be in another zone: the move must come from the voter in the target's zone.
    const zones = { a: { zone: 'z1' }, b: { zone: 'z2' }, c: { zone: 'z3' } };
    const s = cluster(['a', 'b', 'c'], 4, 3, zones);
    applyMeta(s, { type: 'register', node: node('d', 100, { zone: 'z1' }) });
    applyMeta(s, { type: 'register', node: node('e', 101, { zone: 'z2' }) });
    const all = ['a', 'b', 'c', 'd', 'e'];
    expect(partitionActions(planPlacement(input(s, alive(all)))).length).toBeGreaterThan(0);
    settle(s, () => input(s, alive(all)), 200);
    const count = new Map<string, number>();
    for (const p of s.partitions) {
      const voters = p.replicas.filter((r) => r.role === 'voter').map((r) => r.node);
      expect(voters).toHaveLength(3);
      // Still one replica per zone.
      const zoneOf = (id: string) => s.nodes[id]!.tags.zone;
      expect(new Set(voters.map(zoneOf)).size).toBe(3);
      for (const r of p.replicas) count.set(r.node, (count.get(r.node) ?? 0) + 1);
    }
    expect(count.get('d') ?? 0).toBeGreaterThanOrEqual(2);
    expect(count.get('e') ?? 0).toBeGreaterThanOrEqual(2);
  });

  it('moves the replicas of a leaving node away', () => {
    const s = cluster(['a', 'b', 'c', 'd'], 4);
    applyMeta(s, { type: 'setLeaving', id: 'b' });
    settle(s, () => input(s, alive(['a', 'b', 'c', 'd'])));
    for (const p of s.partitions) expect(p.replicas.map((r) => r.node)).not.toContain('b');
  });

  it('puts no new replica on a node whose disk is full, and past the grace period moves its replicas away', () => {
    const s = cluster(['a', 'b', 'c', 'd'], 4);
    // e joined empty; b reports its disk full since t=98,000 (2 s before now, within the 5 s grace).
    applyMeta(s, { type: 'register', node: node('e', 5) });
    const members = alive(['a', 'b', 'c', 'd', 'e']);
    members.set('b', { state: 'alive', since: 0, diskFullSince: 98_000 });
    const within = partitionActions(planPlacement(input(s, members)));
    // Nothing moves off b yet, and b is never chosen as a target.
    expect(within.filter((a) => a.node === 'b')).toEqual([]);
    // Past the grace period: b's replicas move away, to the others (e first: the least loaded).
    members.set('b', { state: 'alive', since: 0, diskFullSince: 90_000 });
    settle(s, () => input(s, members));
    for (const p of s.partitions) expect(p.replicas.map((r) => r.node)).not.toContain('b');
    expect(s.partitions.flatMap((p) => p.replicas.map((r) => r.node))).toContain('e');
    // Its disk freed, b is an ordinary node again: a rebalance may give it replicas.
    members.set('b', { state: 'alive', since: 0 });
    settle(s, () => input(s, members));
    expect(s.partitions.flatMap((p) => p.replicas.map((r) => r.node))).toContain('b');
  });

  it('leaves a partition alone when no live node can take a replica', () => {
    const s = cluster(['a', 'b', 'c'], 2);
    const members = alive(['a', 'b']);
    members.set('c', { state: 'dead', since: 0 });
    expect(partitionActions(planPlacement(input(s, members)))).toEqual([]);
  });

  it('grows the meta group to three voters as nodes register, and replaces a dead voter', () => {
    const s = cluster(['a'], 1, 1);
    applyMeta(s, { type: 'register', node: node('b', 2) });
    const members = alive(['a', 'b']);
    const meta = { voters: ['a'], learners: [] as string[] };
    expect(planPlacement(input(s, members, { meta }))).toMatchObject([{ type: 'metaAddLearner', node: 'b' }]);
    expect(planPlacement(input(s, members, { meta: { voters: ['a'], learners: ['b'] } }))).toMatchObject([
      { type: 'metaPromote', node: 'b' },
    ]);
    // Four nodes, voters a b c, c dead: d replaces c in one joint change.
    const t = cluster(['a', 'b', 'c', 'd'], 1);
    const m2 = alive(['a', 'b', 'd']);
    m2.set('c', { state: 'dead', since: 0 });
    const metaActs = (voters: string[], learners: string[]) =>
      planPlacement(input(t, m2, { meta: { voters, learners } })).filter((a) => a.type.startsWith('meta'));
    const replace = metaActs(['a', 'b', 'c'], ['d']);
    expect(replace).toMatchObject([{ type: 'metaReplace', node: 'd', remove: 'c' }]);
    expect(membershipChanges(replace[0]!)).toEqual([
      { op: 'promote', node: 'd' },
      { op: 'remove', node: 'c' },
    ]);
    // A group left with one voter too many (an earlier single promotion) still removes the dead one.
    expect(metaActs(['a', 'b', 'c', 'd'], [])).toMatchObject([{ type: 'metaRemove', node: 'c' }]);
    expect(metaActs(['a', 'b', 'd'], [])).toEqual([]);
  });
});

describe('operator moves and leader preference', () => {
  it('carries out a recorded move: learner on the target, then promote it and remove the source in one joint change', () => {
    const s = cluster(['a', 'b', 'c', 'd'], 4);
    // Partition 0 is on a, b, c.
    expect(applyMeta(s, { type: 'move', partition: 0, from: 'b', to: 'd' })).toEqual({ ok: true, epoch: 1 });
    const members = alive(['a', 'b', 'c', 'd']);
    const steps: string[] = [];
    for (let i = 0; i < 5 && s.partitions[0]!.move !== undefined; i++) {
      const acts = partitionActions(planPlacement(input(s, members))).filter((a) => a.partition === 0);
      expect(acts).toHaveLength(1);
      steps.push(
        membershipChanges(acts[0]!)
          .map((c) => `${c.op} ${c.node}`)
          .join(' + '),
      );
      record(s, acts[0]!);
    }
    expect(steps).toEqual(['addLearner d', 'promote d + remove b']);
    expect(s.partitions[0]!.replicas.map((r) => r.node).sort()).toEqual(['a', 'c', 'd']);
    expect(s.partitions[0]!.epoch).toBe(3);
    expect(s.partitions[0]!.move).toBeUndefined();
  });

  it('refuses a move whose target holds the partition, whose source is not a voter, or while another runs', () => {
    const s = cluster(['a', 'b', 'c', 'd'], 4);
    expect(applyMeta(s, { type: 'move', partition: 0, from: 'a', to: 'c' })).toEqual({
      ok: false,
      reason: 'c already holds a replica of partition 0',
    });
    expect(applyMeta(s, { type: 'move', partition: 0, from: 'd', to: 'c' })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/d is not a voter of partition 0/),
    });
    expect(applyMeta(s, { type: 'move', partition: 0, from: 'a', to: 'x' })).toMatchObject({ ok: false });
    expect(applyMeta(s, { type: 'move', partition: 0, from: 'a', to: 'd' })).toMatchObject({ ok: true });
    expect(applyMeta(s, { type: 'move', partition: 0, from: 'b', to: 'd' })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/a move of partition 0 from a to d is under way/),
    });
    expect(s.partitions[0]!.epoch).toBe(1);
  });

  it('refuses a move that would leave the partition below a quorum of live voters, or to a dead target', () => {
    const s = cluster(['a', 'b', 'c', 'd', 'e'], 5);
    const p = s.partitions[0]!; // a, b, c
    const up = (ids: string[]) => (id: string) => ids.includes(id);
    expect(moveQuorumRefusal(p, 0, 'a', 'd', up(['a', 'b', 'c', 'd']))).toBeUndefined();
    // One voter down: moving that one (or another) still keeps a quorum at each step.
    expect(moveQuorumRefusal(p, 0, 'c', 'd', up(['a', 'b', 'd']))).toBeUndefined();
    expect(moveQuorumRefusal(p, 0, 'a', 'd', up(['a', 'b', 'd']))).toBeUndefined();
    // Two voters down: the partition has no quorum to change with.
    expect(moveQuorumRefusal(p, 0, 'a', 'd', up(['a', 'd']))).toMatch(
      /would leave it below a quorum now: 1 live voter\(s\) of 3, a quorum needs 2 \(down: b, c\)/,
    );
    expect(moveQuorumRefusal(p, 0, 'a', 'e', up(['a', 'b', 'c']))).toBe('e is not alive: a move needs a live target');
  });

  it('keeps the preferred leader while it is a voter', () => {
    const s = cluster(['a', 'b', 'c', 'd'], 4);
    expect(applyMeta(s, { type: 'preferLeader', partition: 0, node: 'd' })).toMatchObject({ ok: false });
    expect(applyMeta(s, { type: 'preferLeader', partition: 0, node: 'b' })).toMatchObject({ ok: true });
    const replicas = s.partitions[0]!.replicas.filter((r) => r.node !== 'b');
    applyMeta(s, { type: 'reconfigure', partition: 0, epoch: 1, replicas });
    expect(s.partitions[0]!.preferredLeader).toBeUndefined();
  });
});

describe('placement actions as membership changes', () => {
  it('records a replacement as the learner made a voter and the voter gone, and remakes only what is left', () => {
    const a: PlacementAction = { type: 'replace', partition: 0, epoch: 2, node: 'd', remove: 'b', reason: '' };
    const changes = membershipChanges(a);
    const before = [
      { node: 'a', role: 'voter' as const },
      { node: 'b', role: 'voter' as const },
      { node: 'c', role: 'voter' as const },
      { node: 'd', role: 'learner' as const },
    ];
    expect(replicasAfter(before, changes)).toEqual([
      { node: 'a', role: 'voter' },
      { node: 'c', role: 'voter' },
      { node: 'd', role: 'voter' },
    ]);
    expect(before).toHaveLength(4);
    // Asked again: nothing left once both are made, the removal alone after a single promotion.
    expect(changesLeft(changes, ['a', 'b', 'c'], ['d'])).toEqual(changes);
    expect(changesLeft(changes, ['a', 'c', 'd'], [])).toEqual([]);
    expect(changesLeft(changes, ['a', 'b', 'c', 'd'], [])).toEqual([{ op: 'remove', node: 'b' }]);
  });

  it("records a group's configuration as replicas in the map's order, and tells when they differ", () => {
    const before = [
      { node: 'a', role: 'voter' as const },
      { node: 'b', role: 'voter' as const },
      { node: 'c', role: 'voter' as const },
      { node: 'd', role: 'learner' as const },
    ];
    expect(sameConfig(before, { voters: ['c', 'b', 'a'], learners: ['d'] })).toBe(true);
    // A change another meta leader made but never recorded: d promoted, c (not b) removed.
    const group = { voters: ['a', 'b', 'd'], learners: [] };
    expect(sameConfig(before, group)).toBe(false);
    expect(replicasOf(before, group)).toEqual([
      { node: 'a', role: 'voter' },
      { node: 'b', role: 'voter' },
      { node: 'd', role: 'voter' },
    ]);
    expect(replicasOf(before, { voters: ['a', 'e'], learners: ['f'] })).toEqual([
      { node: 'a', role: 'voter' },
      { node: 'e', role: 'voter' },
      { node: 'f', role: 'learner' },
    ]);
  });
});

describe('forced replacement target', () => {
  it('picks a live node without a replica, in an unused zone first, then the least loaded; none when all hold one', () => {
    // 5 nodes, 5 partitions of 3: p0 on a, b, c.
    const s = cluster(['a', 'b', 'c', 'd', 'e'], 5, 3, { d: { zone: 'z1' }, e: { zone: 'z2' }, a: { zone: 'z1' } });
    const everyone = () => true;
    // Replacing a (zone z1): b and c stay (no zone), so d (z1) and e (z2) are both in unused zones; equal load, d started first.
    expect(replacementTarget(s, 0, 'a', everyone)).toBe('d');
    // With d down, e.
    expect(replacementTarget(s, 0, 'a', (id) => id !== 'd')).toBe('e');
    // Replacing b: a (z1) stays, so e (z2) beats d (z1).
    expect(replacementTarget(s, 0, 'b', everyone)).toBe('e');
    // A leaving node is never a target; with every other node holding p0 or down, there is none.
    applyMeta(s, { type: 'setLeaving', id: 'e' });
    expect(replacementTarget(s, 0, 'b', (id) => id !== 'd')).toBeUndefined();
    expect(replacementTarget(s, 99, 'a', everyone)).toBeUndefined();
  });
});

describe('leader assignment by count', () => {
  it('gives each node about P/N leaderships, the first voter on ties, an operator preference kept', () => {
    // Round-robin over 3 nodes: the first voter of each partition leads (as founding placed it).
    expect(assignLeaders(cluster(['a', 'b', 'c'], 4))).toEqual(['a', 'b', 'c', 'a']);
    // 12 partitions over 6 nodes (6 joined later and each holding replicas): 2 leaderships each.
    const s = cluster(['a', 'b', 'c', 'd', 'e', 'f'], 12);
    const counts = new Map<string, number>();
    for (const l of assignLeaders(s)) counts.set(l!, (counts.get(l!) ?? 0) + 1);
    expect([...counts.values()].sort()).toEqual([2, 2, 2, 2, 2, 2]);
    // A joined node holding replicas as a later voter of each still gets its share.
    const t = cluster(['a', 'b', 'c'], 6);
    for (const p of t.partitions.slice(0, 4)) p.replicas[2] = { node: 'd', role: 'voter' };
    applyMeta(t, { type: 'register', node: node('d', 100) });
    const led = assignLeaders(t).filter((l) => l === 'd').length;
    expect(led).toBeGreaterThanOrEqual(1);
    const all = new Map<string, number>();
    for (const l of assignLeaders(t)) all.set(l!, (all.get(l!) ?? 0) + 1);
    expect(Math.max(...all.values()) - Math.min(...all.values())).toBeLessThanOrEqual(1);
    // An operator's preferred leader stays.
    t.partitions[0]!.preferredLeader = 'd';
    expect(assignLeaders(t)[0]).toBe('d');
  });

  it('gives a node joined into 16 partitions on 4 nodes its share of leaderships (P/N rounded down), the last voter of each replica it took', () => {
    const s = cluster(['a', 'b', 'c', 'd'], 16);
    applyMeta(s, { type: 'register', node: node('e', 100) });
    // Rebalancing handed it 10 of the 48 replicas, each as the partition's last voter (never first on ties).
    for (const p of s.partitions.slice(0, 10)) p.replicas[2] = { node: 'e', role: 'voter' };
    const counts = new Map<string, number>();
    for (const l of assignLeaders(s)) counts.set(l!, (counts.get(l!) ?? 0) + 1);
    expect(counts.get('e')).toBe(Math.floor(16 / 5));
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(Math.ceil(16 / 5));
    // Only voters lead: e leads partitions it holds.
    assignLeaders(s).forEach((l, i) => expect(s.partitions[i]!.replicas.map((r) => r.node)).toContain(l));
  });
});
