import { SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { Swim } from '../src/swim.js';
import { EngineCluster } from './helpers/engine-cluster.js';

const live = (c: EngineCluster): string[] => [...c.nodes].filter(([, n]) => n.up).map(([id]) => id);

describe('SWIM engine', () => {
  it('detects a crashed member: suspect within a few periods, then dead everywhere with NodeFailed', () => {
    const c = EngineCluster.full(5, 11);
    c.run(5000);
    c.crash('n3');
    const crashAt = c.now;
    const suspected = c.runUntil(() => live(c).some((id) => c.stateOf(id, 'n3') === 'suspect'), 10_000);
    expect(suspected, 'seed 11').toBe(true);
    expect(c.now - crashAt).toBeLessThan(4000);
    const allDead = c.runUntil(() => live(c).every((id) => c.stateOf(id, 'n3') === 'dead'), 60_000);
    expect(allDead, 'seed 11').toBe(true);
    for (const id of live(c)) expect(c.events(id)).toContainEqual({ type: 'NodeFailed', id: 'n3', incarnation: 0 });
  });

  it('a crashed member probed more often than phi takes to cross is still suspected: the first unanswered ping counts', () => {
    // 3 members, 100 ms probes: each is probed every ~200 ms, well before phi (std floor 100 ms) reaches 8.
    const c = EngineCluster.full(3, 18, { probeIntervalMs: 100, probeTimeoutMs: 50, gossipIntervalMs: 20 });
    c.run(5000);
    c.crash('n2');
    const crashAt = c.now;
    const dead = c.runUntil(() => live(c).every((id) => c.stateOf(id, 'n2') === 'dead'), 30_000);
    expect(dead, 'seed 18').toBe(true);
    expect(c.now - crashAt, 'seed 18').toBeLessThan(5000);
  });

  it('phi stays under the threshold while a member acks as usual, crosses it once it stops, and is absent once dead', () => {
    const c = EngineCluster.full(3, 17);
    c.run(5000);
    const n0 = c.swim('n0');
    let healthy = 0;
    c.runUntil(() => {
      healthy = Math.max(healthy, n0.phi('n1', c.now) ?? 0);
      return false;
    }, 20_000);
    expect(n0.phi('n1', c.now), 'seed 17').toBeDefined();
    expect(healthy, 'seed 17').toBeLessThan(8);
    expect(n0.phi('n0', c.now)).toBeUndefined();
    c.crash('n1');
    let highest = 0;
    const dead = c.runUntil(() => {
      highest = Math.max(highest, n0.phi('n1', c.now) ?? 0);
      return c.stateOf('n0', 'n1') === 'dead';
    }, 60_000);
    expect(dead, 'seed 17').toBe(true);
    expect(highest, 'seed 17').toBeGreaterThanOrEqual(8);
    expect(n0.phi('n1', c.now)).toBeUndefined();
  });

  it('refutes a suspicion about itself with a higher incarnation that overrides it everywhere', () => {
    const c = EngineCluster.full(4, 12);
    c.run(2000);
    const n1 = c.swim('n1');
    const accusation = { ...n1.member('n2')!, state: 'suspect' as const, by: 'n1' };
    c.emit('n1', n1.step('n0', { type: 'gossip', gossip: [accusation] }, c.now));
    expect(c.stateOf('n1', 'n2')).toBe('suspect');
    const ok = c.runUntil(() => live(c).every((id) => c.swim(id).member('n2')?.incarnation === 1), 10_000);
    expect(ok, 'seed 12').toBe(true);
    expect(c.swim('n2').incarnation).toBe(1);
    expect(live(c).every((id) => c.stateOf(id, 'n2') === 'alive')).toBe(true);
  });

  it('answers an accuser that still holds an older accusation with its current alive state', () => {
    const a = new Swim({ self: 'a', address: 'a:1', random: new SeededRandom(1), incarnation: 5 });
    a.bootstrap([{ id: 'b', address: 'b:1', incarnation: 0, state: 'alive', tags: {} }]);
    const stale = { id: 'a', address: 'a:1', incarnation: 3, state: 'suspect' as const, tags: {}, by: 'b' };
    const out = a.step('b', { type: 'ping', seq: 9, target: 'a', gossip: [stale] }, 0);
    expect(a.incarnation).toBe(5);
    const ack = out.messages.find((m) => m.to === 'b' && m.message.type === 'ack')?.message;
    expect(ack && 'gossip' in ack ? ack.gossip : []).toContainEqual(
      expect.objectContaining({ id: 'a', incarnation: 5, state: 'alive' }),
    );
  });

  it('buddy system: a ping to a suspect member carries its suspicion first', () => {
    const c = EngineCluster.full(3, 13);
    const n0 = c.swim('n0');
    n0.step('n1', { type: 'gossip', gossip: [{ ...n0.member('n2')!, state: 'suspect', by: 'n1' }] }, 0);
    let pingToN2: { gossip: readonly { id: string; state: string }[] } | undefined;
    for (let t = 0; t < 5000 && !pingToN2; t += 100) {
      for (const m of n0.tick(t).messages) {
        if (m.to === 'n2' && m.message.type === 'ping') pingToN2 = m.message;
      }
    }
    expect(pingToN2?.gossip[0]).toMatchObject({ id: 'n2', state: 'suspect' });
  });

  it('an indirect probe through K others keeps a member alive when only the direct link fails', () => {
    const c = EngineCluster.full(5, 14);
    c.drop = (a, b) => (a === 'n0' && b === 'n4') || (a === 'n4' && b === 'n0');
    c.run(30_000);
    expect(c.swim('n0').stats.probeFailures).toBe(0);
    expect(c.stateOf('n0', 'n4')).toBe('alive');
  });

  it('relays that cannot reach the target answer with a nack, so the prober does not blame itself for them', () => {
    const c = EngineCluster.full(5, 15);
    c.run(3000);
    c.crash('n4');
    c.runUntil(() => c.swim('n0').stats.probeFailures > 0, 20_000);
    // Three relays nacked: the missed probe raised n0's health score by 0 (memberlist's rule), not by 3.
    expect(c.swim('n0').healthScore).toBe(0);
  });

  it('local health rises when relays do not even nack (this node is the slow one)', () => {
    const c = EngineCluster.full(5, 16);
    c.run(3000);
    c.drop = (a) => a !== 'n0';
    c.runUntil(() => c.swim('n0').healthScore >= 3, 20_000);
    expect(c.swim('n0').healthScore).toBeGreaterThanOrEqual(3);
  });

  it('phi accrual defers suspicion of a member whose acks are known to be slow', () => {
    const c = EngineCluster.full(2, 17, { phi: { minStdDeviationMs: 100 } });
    c.delayMs = 700; // round trip 1.4 s: every ack is late, but it arrives
    c.run(20_000);
    const stats = c.swim('n0').stats;
    expect(stats.phiDeferrals).toBeGreaterThan(0);
    expect(c.stateOf('n0', 'n1')).not.toBe('dead');
    expect(c.stateOf('n1', 'n0')).not.toBe('dead');
  });

  it('joins through a seed and learns the others', () => {
    const c = new EngineCluster(18);
    for (const id of ['a', 'b', 'c']) c.add(id);
    c.emit('b', c.swim('b').join([{ id: 'a', address: 'a:7946' }], 0));
    c.emit('c', c.swim('c').join([{ id: 'a', address: 'a:7946' }], 0));
    const ok = c.runUntil(() => ['a', 'b', 'c'].every((id) => c.swim(id).liveMembers().length === 3), 60_000);
    expect(ok, 'seed 18').toBe(true);
    expect(c.events('a').filter((e) => e.type === 'NodeJoined')).toHaveLength(2);
  });

  it('spreads tags: TagsUpdated and the tag queries on other members', () => {
    const c = EngineCluster.full(4, 19);
    c.run(2000);
    c.emit('n2', c.swim('n2').setTags({ role: 'kv', zone: 'z1' }, c.now));
    c.emit('n3', c.swim('n3').setTags({ role: 'kv', zone: 'z2' }, c.now));
    const ok = c.runUntil(() => c.swim('n0').nodesWithTag('role', 'kv').length === 2, 10_000);
    expect(ok, 'seed 19').toBe(true);
    expect(
      c
        .swim('n1')
        .nodesWithAllTags({ role: 'kv', zone: 'z2' })
        .map((m) => m.id),
    ).toEqual(['n3']);
    expect(c.events('n0')).toContainEqual({ type: 'TagsUpdated', id: 'n2', tags: { role: 'kv', zone: 'z1' } });
  });

  it('a member paused past its death catches up at once on what was gossiped meanwhile, not at the next push/pull', () => {
    // Anti-entropy every 10 minutes: only the resync on waking can bring the missed tags in time.
    const c = EngineCluster.full(4, 23, { pushPullIntervalMs: 600_000, reconnectIntervalMs: 600_000 });
    c.run(3000);
    c.crash('n3');
    c.emit('n1', c.swim('n1').setTags({ leads: 'p3:7' }, c.now));
    const dead = c.runUntil(() => ['n0', 'n1', 'n2'].every((id) => c.stateOf(id, 'n3') === 'dead'), 60_000);
    expect(dead, 'seed 23').toBe(true);
    // Long enough for every retransmission of the tag update to have been spent on the others.
    c.run(20_000);
    expect(c.swim('n3').member('n1')?.tags).toEqual({});
    c.resume('n3');
    const resumedAt = c.now;
    const caughtUp = c.runUntil(() => c.swim('n3').member('n1')?.tags.leads === 'p3:7', 10_000);
    expect(caughtUp, 'seed 23').toBe(true);
    expect(c.now - resumedAt, 'seed 23').toBeLessThan(3000);
    expect(c.swim('n3').stats.resyncs).toBeGreaterThan(0);
    const back = c.runUntil(() => ['n0', 'n1', 'n2'].every((id) => c.stateOf(id, 'n3') === 'alive'), 10_000);
    expect(back, 'seed 23').toBe(true);
  });

  it('graceful leave: others see NodeLeft, never NodeFailed', () => {
    const c = EngineCluster.full(5, 20);
    c.run(3000);
    c.emit('n1', c.swim('n1').leave(c.now));
    const done = c.runUntil(() => c.swim('n1').leaveDisseminated(), 5000);
    expect(done, 'seed 20').toBe(true);
    c.crash('n1');
    c.run(60_000);
    for (const id of live(c)) {
      expect(c.stateOf(id, 'n1')).toBe('left');
      expect(c.events(id)).toContainEqual({ type: 'NodeLeft', id: 'n1' });
      expect(c.events(id).some((e) => e.type === 'NodeFailed')).toBe(false);
    }
  });

  it('a restarted member comes back alive with a higher incarnation than the one it died with', () => {
    const c = EngineCluster.full(4, 21);
    c.run(3000);
    c.crash('n3');
    c.runUntil(() => ['n0', 'n1', 'n2'].every((id) => c.stateOf(id, 'n3') === 'dead'), 60_000);
    c.nodes.delete('n3');
    const fresh = c.add('n3');
    c.emit('n3', fresh.join([{ id: 'n0', address: 'n0:7946' }], c.now));
    const ok = c.runUntil(() => ['n0', 'n1', 'n2'].every((id) => c.stateOf(id, 'n3') === 'alive'), 30_000);
    expect(ok, 'seed 21').toBe(true);
    expect(fresh.incarnation).toBeGreaterThan(0);
    expect(c.events('n0')).toContainEqual({ type: 'NodeRecovered', id: 'n3', incarnation: fresh.incarnation });
  });

  it('reports a partition when 3 of 5 fail at once: suspect, then partitioned as the minority', () => {
    const c = EngineCluster.full(5, 22, { partition: { gracePeriodMs: 5000 } });
    c.run(3000);
    for (const id of ['n2', 'n3', 'n4']) c.crash(id);
    const ok = c.runUntil(() => c.swim('n0').partitionStatus().kind === 'partitioned', 120_000);
    expect(ok, 'seed 22').toBe(true);
    expect(c.swim('n0').partitionStatus()).toMatchObject({ reachable: 2, expected: 5, minority: true });
    const kinds = c.events('n0').flatMap((e) => (e.type === 'PartitionDetected' ? [e.status.kind] : []));
    expect(kinds).toEqual(['suspect', 'partitioned']);
  });
  it('concludes a failed probe as soon as every relay has nacked, without waiting out the period', () => {
    const a = new Swim({ self: 'a', address: 'a:1', random: new SeededRandom(21) });
    a.bootstrap(
      ['b', 'c', 'd', 'e'].map((id) => ({ id, address: `${id}:1`, incarnation: 0, state: 'alive', tags: {} })),
    );
    let ping: { to: string; seq: number; at: number } | undefined;
    for (let t = 0; t <= 1000 && !ping; t += 10) {
      for (const m of a.tick(t).messages) if (m.message.type === 'ping') ping = { to: m.to, seq: m.message.seq, at: t };
    }
    if (!ping) throw new Error('seed 21: no probe within the first period');
    const reqs = a.tick(ping.at + 500).messages.filter((m) => m.message.type === 'ping-req');
    expect(reqs).toHaveLength(3);
    const changes = reqs.flatMap(
      (r) => a.step(r.to, { type: 'nack', seq: ping.seq, gossip: [] }, ping.at + 520).changes,
    );
    expect(changes).toContainEqual(expect.objectContaining({ id: ping.to, to: 'suspect', local: true }));
    expect(a.member(ping.to)?.state).toBe('suspect');
  });

  it('relays a refutation ahead of a backlog of accusations, even where the accusation was never held', () => {
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    const a = new Swim({ self: 'a', address: 'a:1', random: new SeededRandom(22) });
    a.bootstrap(ids.map((id) => ({ id, address: `${id}:1`, incarnation: 0, state: 'alive', tags: {} })));
    const accusations = ids.slice(10, 40).map((id) => ({ ...a.member(id)!, state: 'suspect' as const, by: 'm1' }));
    a.step('m1', { type: 'gossip', gossip: accusations }, 0);
    const refutation = { ...a.member('m5')!, incarnation: 1 };
    const out = a.step('m2', { type: 'ping', seq: 7, target: 'a', gossip: [refutation] }, 10);
    const ack = out.messages.find((m) => m.message.type === 'ack')?.message;
    expect(ack && 'gossip' in ack ? ack.gossip[0] : undefined).toMatchObject({
      id: 'm5',
      incarnation: 1,
      state: 'alive',
    });
  });

  it("a suspected member's own refutation rides on every message, ahead of others' refutations", () => {
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    const a = new Swim({ self: 'a', address: 'a:1', random: new SeededRandom(23) });
    a.bootstrap(ids.map((id) => ({ id, address: `${id}:1`, incarnation: 0, state: 'alive', tags: {} })));
    const accusation = { ...a.member('a')!, state: 'suspect' as const, by: 'm1' };
    a.step('m1', { type: 'ping', seq: 1, target: 'a', gossip: [accusation] }, 0);
    expect(a.incarnation).toBe(1);
    const others = ids.slice(10, 35).map((id) => ({ ...a.member(id)!, incarnation: 1 }));
    a.step('m3', { type: 'gossip', gossip: others }, 5);
    const out = a.step('m2', { type: 'ping', seq: 2, target: 'a', gossip: [] }, 10);
    const ack = out.messages.find((m) => m.message.type === 'ack')?.message;
    expect(ack && 'gossip' in ack ? ack.gossip[0] : undefined).toMatchObject({
      id: 'a',
      incarnation: 1,
      state: 'alive',
    });
  });
});
