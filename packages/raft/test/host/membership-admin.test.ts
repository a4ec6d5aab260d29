import { ClusterDownError, type NodeId, NotLeaderError, emptyConfState } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type MembershipChange,
  MembershipRefusedError,
  type MembershipView,
  checkTransfer,
  planJointChange,
  planMembershipChange,
} from '../../src/index.js';
import { Cluster, cmd, until } from './cluster.js';
import { MemoryNodeStore } from './memory-node-store.js';

function view(over: Partial<MembershipView> = {}): MembershipView {
  return {
    self: 'a',
    confState: { ...emptyConfState(), voters: ['a', 'b', 'c'], learners: ['d'] },
    reachable: new Set(['a', 'b', 'c', 'd']),
    match: { a: 100, b: 100, c: 100, d: 95 },
    lastIndex: 100,
    maxLag: 10,
    ...over,
  };
}

describe('planMembershipChange', () => {
  it('maps each operation to one conf change', () => {
    expect(planMembershipChange(view(), { op: 'addLearner', node: 'e' })).toEqual({ type: 'addLearner', nodeId: 'e' });
    expect(planMembershipChange(view(), { op: 'promote', node: 'd' })).toEqual({ type: 'addVoter', nodeId: 'd' });
    expect(planMembershipChange(view(), { op: 'remove', node: 'c' })).toEqual({ type: 'removeNode', nodeId: 'c' });
    expect(planMembershipChange(view(), { op: 'remove', node: 'd' })).toEqual({ type: 'removeNode', nodeId: 'd' });
  });

  it('refuses changes that would leave fewer reachable voters than a quorum, saying which', () => {
    const cDown = view({ reachable: new Set(['a', 'b', 'd']) });
    // Voters a, c after removing b: c is down, so one of two is reachable.
    expect(() => planMembershipChange(cDown, { op: 'remove', node: 'b' })).toThrow(
      /removing b would leave voters a, c, of which only a is reachable; a quorum needs 2/,
    );
    // Removing the unreachable voter is what an operator should do instead.
    expect(planMembershipChange(cDown, { op: 'remove', node: 'c' })).toEqual({ type: 'removeNode', nodeId: 'c' });
    const bcDown = view({
      reachable: new Set(['a', 'd']),
      confState: { ...view().confState, voters: ['a', 'b', 'c', 'e'] },
    });
    expect(() => planMembershipChange(bcDown, { op: 'promote', node: 'd' })).toThrow(/a quorum needs 3/);
  });

  it('refuses what cannot be safe or makes no sense, with what to do', () => {
    const refused = (v: MembershipView, c: Parameters<typeof planMembershipChange>[1]): string => {
      try {
        planMembershipChange(v, c);
      } catch (err) {
        expect(err).toBeInstanceOf(MembershipRefusedError);
        return (err as Error).message;
      }
      throw new Error('not refused');
    };
    expect(refused(view(), { op: 'remove', node: 'a' })).toMatch(/transfer-leader/);
    expect(refused(view(), { op: 'addLearner', node: 'b' })).toMatch(/already a voter/);
    expect(refused(view(), { op: 'promote', node: 'e' })).toMatch(/cohort cluster add e/);
    expect(refused(view({ match: { d: 50 } }), { op: 'promote', node: 'd' })).toMatch(/50 entries behind/);
    expect(refused(view({ reachable: new Set(['a', 'b', 'c']) }), { op: 'promote', node: 'd' })).toMatch(
      /not reachable/,
    );
    const joint = view({ confState: { ...view().confState, votersOutgoing: ['a', 'b'] } });
    expect(refused(joint, { op: 'addLearner', node: 'e' })).toMatch(/under way/);
    expect(() => checkTransfer(view(), 'd')).toThrow(/promote it first/);
    expect(() => checkTransfer(view(), 'a')).toThrow(/already leads/);
    expect(() => checkTransfer(view({ reachable: new Set(['a']) }), 'b')).toThrow(/not reachable/);
  });
});

describe('planJointChange', () => {
  const refused = (v: MembershipView, cs: MembershipChange[]): string => {
    try {
      planJointChange(v, cs);
    } catch (err) {
      expect(err).toBeInstanceOf(MembershipRefusedError);
      return (err as Error).message;
    }
    throw new Error('not refused');
  };
  const replace: MembershipChange[] = [
    { op: 'promote', node: 'd' },
    { op: 'remove', node: 'c' },
  ];

  it('turns a replacement into the conf changes of one joint transition', () => {
    expect(planJointChange(view(), replace)).toEqual([
      { type: 'addVoter', nodeId: 'd' },
      { type: 'removeNode', nodeId: 'c' },
    ]);
    // A single change is planned as planMembershipChange plans it (the leader may not remove itself).
    expect(planJointChange(view(), [{ op: 'remove', node: 'c' }])).toEqual([{ type: 'removeNode', nodeId: 'c' }]);
    expect(refused(view(), [{ op: 'remove', node: 'a' }])).toMatch(/transfer-leader/);
  });

  it('lets a joint change remove the leader, which leads the joint configuration and then steps down', () => {
    expect(
      planJointChange(view(), [
        { op: 'promote', node: 'd' },
        { op: 'remove', node: 'a' },
      ]),
    ).toEqual([
      { type: 'addVoter', nodeId: 'd' },
      { type: 'removeNode', nodeId: 'a' },
    ]);
  });

  it('replaces a dead voter: the outgoing and the incoming voters each keep a reachable quorum', () => {
    const cDown = view({ reachable: new Set(['a', 'b', 'd']) });
    expect(planJointChange(cDown, replace)).toHaveLength(2);
    // Replacing a live voter while another is down would leave the incoming voters a, c, d with c down: still 2 of 3.
    expect(
      planJointChange(cDown, [
        { op: 'promote', node: 'd' },
        { op: 'remove', node: 'b' },
      ]),
    ).toHaveLength(2);
    const bcDown = view({ reachable: new Set(['a', 'd']) });
    expect(refused(bcDown, replace)).toMatch(
      /promote d \+ remove c needs a quorum of the outgoing voters a, b, c, of which only a is reachable; a quorum needs 2/,
    );
    const fiveVoters = view({
      confState: { ...emptyConfState(), voters: ['a', 'b', 'c', 'e', 'f'], learners: ['d'] },
      reachable: new Set(['a', 'b', 'c', 'd']),
    });
    // Outgoing a..f: a, b, c of 5 reachable; incoming a, b, d, e, f without c: a, b, d of 5 reachable.
    expect(planJointChange(fiveVoters, replace)).toHaveLength(2);
    expect(
      refused(fiveVoters, [
        { op: 'promote', node: 'd' },
        { op: 'remove', node: 'b' },
        { op: 'remove', node: 'c' },
      ]),
    ).toMatch(/needs a quorum of the incoming voters a, d, e, f, of which only a, d are reachable; a quorum needs 3/);
  });

  it('refuses what a single change refuses, a node named twice, and an empty request', () => {
    expect(refused(view(), [])).toMatch(/no membership change given/);
    expect(
      refused(view(), [
        { op: 'promote', node: 'd' },
        { op: 'remove', node: 'd' },
      ]),
    ).toMatch(/d is named by more than one change/);
    expect(refused(view({ match: { d: 50 } }), replace)).toMatch(/50 entries behind/);
    expect(refused(view({ reachable: new Set(['a', 'b', 'c']) }), replace)).toMatch(/learner d is not reachable/);
    expect(
      refused(view(), [
        { op: 'promote', node: 'e' },
        { op: 'remove', node: 'c' },
      ]),
    ).toMatch(/cohort cluster add e/);
    expect(
      refused(view(), [
        { op: 'promote', node: 'd' },
        { op: 'remove', node: 'z' },
      ]),
    ).toMatch(/z is not a member/);
    const joint = view({ confState: { ...view().confState, votersOutgoing: ['a', 'b', 'c'] } });
    expect(refused(joint, replace)).toMatch(/under way/);
  });
});

describe('RaftHost membership administration and quorum status', () => {
  let cluster: Cluster | undefined;
  afterEach(() => {
    for (const n of cluster?.nodes.values() ?? []) n.host.stop();
    cluster = undefined;
  });

  it('adds a learner, promotes it, removes a voter and moves the leadership', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0']);
    const c = cluster;
    const leader = await until('a leader', () => c.leader());
    const lead = c.node(leader).host;
    await lead.propose('p0', cmd('x=1'));
    const d = c.start('d', new MemoryNodeStore(), undefined, []);
    expect(d.host.status('p0').quorum.voters).toEqual([]);
    const follower = c.ids.find((id) => id !== leader)!;
    await expect(c.node(follower).host.changeMembership('p0', { op: 'addLearner', node: 'd' })).rejects.toBeInstanceOf(
      NotLeaderError,
    );
    let cs = await lead.changeMembership('p0', { op: 'addLearner', node: 'd' });
    expect(cs.learners).toEqual(['d']);
    await until('the learner has the data', () => d.sms.get('p0')!.map.get('x') === '1');
    await until('the learner is caught up', () => d.host.status('p0').applied >= lead.status('p0').commit);
    cs = await lead.changeMembership('p0', { op: 'promote', node: 'd' });
    expect(cs.voters).toEqual(['a', 'b', 'c', 'd']);
    const victim = c.ids.find((id) => id !== leader)!;
    cs = await lead.changeMembership('p0', { op: 'remove', node: victim });
    expect(cs.voters).not.toContain(victim);
    expect(cs.voters).toHaveLength(3);
    await expect(lead.transferLeadership('p0', victim)).rejects.toBeInstanceOf(MembershipRefusedError);
    expect(lead.status('p0').transferee).toBeUndefined();
    const moving = lead.transferLeadership('p0', 'd');
    // The status names the voter the leadership goes to while the transfer is under way (RESP's ASK).
    expect(lead.status('p0').transferee).toBe('d');
    expect(await moving).toBe('d');
    await until('d leads', () => c.leader('p0', ['d']));
    await d.host.propose('p0', cmd('y=2'));
    expect(d.host.status('p0').quorum.state).toBe('ok');
  });

  /** A 3-voter group a, b, c with `d` a caught-up learner; each node's configurations as it applied them. */
  async function withLearner(): Promise<{ c: Cluster; leader: NodeId; configs: Map<NodeId, string[]> }> {
    cluster = new Cluster(['a', 'b', 'c'], ['p0']);
    const c = cluster;
    const leader = await until('a leader', () => c.leader());
    const lead = c.node(leader).host;
    await lead.propose('p0', cmd('x=1'));
    c.start('d', new MemoryNodeStore(), undefined, []);
    const configs = new Map<NodeId, string[]>();
    for (const n of c.nodes.values()) {
      const seen: string[] = [];
      configs.set(n.id, seen);
      n.host.onConfChange = (group) => {
        const s = n.host.status(group);
        seen.push(`${s.votersOutgoing.length > 0 ? `${s.votersOutgoing.join('')}&` : ''}${s.voters.join('')}`);
      };
    }
    await lead.changeMembership('p0', { op: 'addLearner', node: 'd' });
    await until('the learner is caught up', () => c.node('d').host.status('p0').applied >= lead.status('p0').commit);
    return { c, leader, configs };
  }

  it('replaces a voter with a caught-up learner in one joint change, never running 4 voters outside it', async () => {
    const { c, leader, configs } = await withLearner();
    const lead = c.node(leader).host;
    const victim = c.ids.find((id) => id !== leader)!;
    const rest = c.ids.filter((id) => id !== victim);
    const cs = await lead.changeMembership('p0', [
      { op: 'promote', node: 'd' },
      { op: 'remove', node: victim },
    ]);
    // Resolved once the joint configuration was left: the final one is applied here.
    expect(cs.votersOutgoing).toEqual([]);
    expect(cs.voters).toEqual([...rest, 'd'].sort());
    expect(cs.learners).toEqual([]);
    const final = [...rest, 'd'].sort().join('');
    for (const id of [...rest, 'd']) {
      await until(`${id} applied the final configuration`, () => configs.get(id)!.at(-1) === final);
      // Learner added, joint (old & new), final: every 4-member set of voters was joint.
      expect(configs.get(id)!.slice(-2)).toEqual([`abc&${final}`, final]);
    }
    expect(lead.status('p0').role).toBe('leader');
    await lead.propose('p0', cmd('y=2'));
    await until('d applied y', () => c.node('d').sms.get('p0')!.map.get('y') === '2');
  });

  it('a joint change that removes the leader resolves once left, and the group elects a leader among the new voters', async () => {
    const { c, leader } = await withLearner();
    const lead = c.node(leader).host;
    const cs = await lead.changeMembership('p0', [
      { op: 'promote', node: 'd' },
      { op: 'remove', node: leader },
    ]);
    expect(cs.voters).not.toContain(leader);
    expect(cs.votersOutgoing).toEqual([]);
    const voters = [...c.ids.filter((id) => id !== leader), 'd'];
    const next = await until('a leader among the new voters', () => c.leader('p0', voters));
    await c.node(next).host.propose('p0', cmd('y=2'));
    for (const id of voters) await until(`${id} applied y`, () => c.node(id).sms.get('p0')!.map.get('y') === '2');
    expect(lead.status('p0').role).not.toBe('leader');
  });

  it('refuses a joint change before proposing anything: off the leader, while another runs, or without a quorum', async () => {
    const { c, leader } = await withLearner();
    const lead = c.node(leader).host;
    const follower = c.ids.find((id) => id !== leader)!;
    const replace: MembershipChange[] = [
      { op: 'promote', node: 'd' },
      { op: 'remove', node: follower },
    ];
    await expect(c.node(follower).host.changeMembership('p0', replace)).rejects.toBeInstanceOf(NotLeaderError);
    await expect(lead.changeMembership('p0', [])).rejects.toThrow(/no membership change given/);
    const before = lead.status('p0').lastIndex;
    // The second is judged while the first's joint configuration is under way (or its entry not yet applied).
    const first = lead.changeMembership('p0', replace);
    await expect(
      lead.changeMembership('p0', [
        { op: 'addLearner', node: 'e' },
        { op: 'remove', node: 'd' },
      ]),
    ).rejects.toThrow(/under way|not yet applied/);
    await first;
    // The joint entry and the leave entry, nothing from the refused change.
    expect(lead.status('p0').lastIndex).toBe(before + 2);
    // Voters now leader, other, d: with other silent, a change leaving the voters leader and other is refused.
    const other = c.ids.find((id) => id !== leader && id !== follower)!;
    c.hub.down.add(other);
    await until('the leader misses the silent voter', () => lead.status('p0').quorum.unreachable.includes(other));
    await expect(
      lead.changeMembership('p0', [
        { op: 'addLearner', node: follower },
        { op: 'remove', node: 'd' },
      ]),
    ).rejects.toThrow(
      new RegExp(
        `needs a quorum of the incoming voters ${[leader, other].sort().join(', ')}, of which only ${leader} is reachable`,
      ),
    );
  });

  it('reports the quorum lost and refuses requests once the other voters are silent for a window', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { requestTimeoutMs: 5000 });
    const c = cluster;
    const leader = await until('a leader', () => c.leader());
    expect(c.node(leader).host.status('p0').quorum.state).toBe('ok');
    const others = c.ids.filter((id) => id !== leader);
    for (const id of others) c.hub.down.add(id);
    const t = Date.now();
    const err = await c
      .node(leader)
      .host.propose('p0', cmd('z=1'))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClusterDownError);
    // Window: (9 + 1) ticks of 10 ms; the request timeout is 5 s.
    expect(Date.now() - t).toBeLessThan(2000);
    const q = c.node(leader).host.status('p0').quorum;
    expect(q.state).toBe('lost');
    expect(q.unreachable).toEqual(others);
    await expect(c.node(leader).host.readIndex('p0')).rejects.toBeInstanceOf(ClusterDownError);
  });
});

describe('RaftHost.forceConfiguration (unsafe recovery)', () => {
  let cluster: Cluster | undefined;
  afterEach(() => {
    for (const n of cluster?.nodes.values() ?? []) n.host.stop();
    cluster = undefined;
  });

  it('a survivor of a group whose two other voters are gone for good leads it alone, keeps its data, and a restart keeps the membership', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { requestTimeoutMs: 2000 });
    const c = cluster;
    const leader = await until('a leader', () => c.leader());
    await c.node(leader).host.propose('p0', cmd('x=1'));
    const survivor = c.ids.find((id) => id !== leader)!;
    await until('the survivor applied x', () => c.node(survivor).sms.get('p0')!.map.get('x') === '1');
    for (const id of c.ids.filter((x) => x !== survivor)) {
      c.node(id).host.stop();
      c.hub.down.add(id);
    }
    const host = c.node(survivor).host;
    await expect(host.forceConfiguration('p0', ['z'])).rejects.toThrow(/is not in z/);
    const f = await host.forceConfiguration('p0', [survivor]);
    expect(f.forced).toBe(true);
    expect(f.before.voters).toEqual(['a', 'b', 'c']);
    const s = host.status('p0');
    expect(s).toMatchObject({ role: 'leader', voters: [survivor], learners: [] });
    expect(s.quorum.state).toBe('ok');
    await host.propose('p0', cmd('y=2'));
    expect(c.node(survivor).sms.get('p0')!.map.get('x')).toBe('1');
    // A restart on the same store and machine keeps the forced membership and leads it again.
    const { store, disks } = c.node(survivor);
    host.stop();
    const again = c.start(survivor, store, disks);
    await until('the survivor leads again', () => again.host.isLeader('p0'));
    expect(again.host.status('p0').voters).toEqual([survivor]);
    await again.host.propose('p0', cmd('z=3'));
    expect(again.sms.get('p0')!.map.get('y')).toBe('2');
  });
});
