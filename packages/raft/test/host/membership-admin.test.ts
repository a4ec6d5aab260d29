import { ClusterDownError, NotLeaderError, emptyConfState } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { MembershipRefusedError, type MembershipView, checkTransfer, planMembershipChange } from '../../src/index.js';
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
