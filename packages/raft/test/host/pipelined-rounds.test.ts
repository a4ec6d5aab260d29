import type { NodeId } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type Cluster, cmd, until } from './cluster.js';
import { gated, onReceived, settled, store, watch } from './gated-cluster.js';

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

/** Counts the messages of `type` that `from` sent to `to` from now on. */
function counter(w: ReturnType<typeof watch>, from: NodeId, to: NodeId, type: string): () => number {
  const start = w.sent.length;
  return () =>
    w.sent.slice(start).filter((s) => s.from === from && s.message.to === to && s.message.type === type).length;
}

describe('pipelined Ready rounds', () => {
  it('while every write is blocked, the leader keeps heartbeating, the followers keep answering, and the leader keeps its group', async () => {
    // Check-quorum on: a leader that stops hearing answers steps down after an election timeout (5 ticks).
    cluster = gated({}, true);
    const c = cluster;
    const w = watch(c);
    const leader = await settled(c);
    const [f1] = c.ids.filter((id) => id !== leader) as [NodeId];
    const term = c.node(leader).host.status('p0').term;
    for (const id of c.ids) store(c, id).hold();
    const target = c.node(leader).host.status('p0').lastIndex + 1;
    let resolved = false;
    const p = c
      .node(leader)
      .host.propose('p0', cmd('x=1'))
      .then(() => {
        resolved = true;
      });
    await until('every node is writing x', () => c.ids.every((id) => store(c, id).requested('p0', target)));
    const heartbeats = counter(w, leader, f1, 'heartbeat');
    const answers = counter(w, f1, leader, 'heartbeatResp');
    // Four election timeouts of the leader, with every write still open.
    await until('20 heartbeats answered', () => heartbeats() >= 20 && answers() >= 20);
    expect(c.ids.every((id) => store(c, id).inFlight > 0)).toBe(true);
    expect(c.node(leader).host.isLeader('p0')).toBe(true);
    expect(c.node(leader).host.status('p0').term).toBe(term);
    // No durable copy anywhere: nothing commits, nothing is acknowledged.
    expect(c.node(leader).host.status('p0').commit).toBeLessThan(target);
    expect(resolved).toBe(false);
    for (const id of c.ids) store(c, id).release();
    await p;
    expect(w.violations).toEqual([]);
  });

  it('a leader sends new appends while its own write is blocked, and the followers commit them without it', async () => {
    cluster = gated();
    const c = cluster;
    const w = watch(c);
    const leader = await settled(c);
    const followers = c.ids.filter((id) => id !== leader);
    const first = c.node(leader).host.status('p0').lastIndex + 1;
    const acked = new Map<NodeId, number>();
    onReceived(c, leader, (from, m) => {
      if (m.type === 'appResp' && !m.reject) acked.set(from, Math.max(acked.get(from) ?? 0, m.index));
    });
    store(c, leader).hold();
    const writes = [c.node(leader).host.propose('p0', cmd('x=1'))];
    await until("the leader's write of x is in flight", () => store(c, leader).requested('p0', first));
    // Proposed while that write is open: its entry goes out now and is written next (pipelined).
    for (let i = 0; i < 5; i++) writes.push(c.node(leader).host.propose('p0', cmd(`y${i}=1`)));
    const last = first + 5;
    await until('both followers acknowledged every entry', () => followers.every((f) => (acked.get(f) ?? 0) >= last));
    expect(store(c, leader).durable('p0').lastIndex).toBeLessThan(first);
    expect(store(c, leader).requested('p0', last)).toBe(true);
    expect(c.node(leader).host.status('p0').commit).toBeGreaterThanOrEqual(last);
    // The leader applies only what it holds durably.
    expect(c.node(leader).sms.get('p0')!.map.has('x')).toBe(false);
    expect(c.node(leader).host.stats().roundsOverlapped).toBeGreaterThan(0);
    store(c, leader).release();
    await Promise.all(writes);
    expect(c.node(leader).sms.get('p0')!.map.get('y4')).toBe('1');
    expect(w.violations).toEqual([]);
  });

  it("a follower whose write is blocked answers heartbeats, but holds everything under a new term until that term's write is durable", async () => {
    cluster = gated();
    const c = cluster;
    const w = watch(c);
    const leader = await settled(c);
    const [slow, other] = c.ids.filter((id) => id !== leader) as [NodeId, NodeId];
    const term = c.node(leader).host.status('p0').term;
    const target = c.node(leader).host.status('p0').lastIndex + 1;
    store(c, slow).hold();
    await c.node(leader).host.propose('p0', cmd('x=1'));
    await until('the slow follower is writing x', () => store(c, slow).requested('p0', target));
    const answers = counter(w, slow, leader, 'heartbeatResp');
    await until('the slow follower answers heartbeats', () => answers() >= 5);
    const acks = () =>
      w.sent.filter(({ from, message: m }) => from === slow && m.type === 'appResp' && m.index >= target).length;
    expect(acks()).toBe(0);
    // A new term while its write is blocked: the vote it grants, and every answer in the new term, wait.
    await c.node(leader).host.transferLeadership('p0', other);
    await until('the slow follower is writing the new term', () =>
      store(c, slow).writes.some((b) => b.some((x) => (x.hardState?.term ?? 0) > term)),
    );
    const newTerm = () => w.sent.filter(({ from, message: m }) => from === slow && m.term > term).length;
    const newLeaderBeats = counter(w, other, slow, 'heartbeat');
    await until('the new leader heartbeats the slow follower', () => newLeaderBeats() >= 5);
    expect(newTerm()).toBe(0);
    store(c, slow).release();
    await until('the slow follower answers in the new term', () => newTerm() > 0);
    await until('and acknowledges x', () => acks() > 0);
    expect(w.violations).toEqual([]);
  });

  it('a leader whose writes are all blocked (every round it may hold out in flight) still hands its leadership over', async () => {
    cluster = gated();
    const c = cluster;
    const w = watch(c);
    const leader = await settled(c);
    const [to] = c.ids.filter((id) => id !== leader) as [NodeId];
    store(c, leader).hold();
    // More proposals than rounds the leader may have in flight: its rounds are all taken, none completes.
    const first = c.node(leader).host.status('p0').lastIndex + 1;
    const writes = Array.from({ length: 8 }, (_, i) => c.node(leader).host.propose('p0', cmd(`k${i}=1`)));
    for (const p of writes) p.catch(() => undefined);
    await until('the leader has rounds in flight up to its cap', () => store(c, leader).requested('p0', first));
    await until('the followers hold every entry', () =>
      c.ids.filter((id) => id !== leader).every((id) => c.node(id).host.status('p0').lastIndex >= first + 7),
    );
    const timeouts = counter(w, leader, to, 'timeoutNow');
    // The TimeoutNow depends on the target's durable log, not the leader's: it leaves before the blocked writes.
    const moved = c.node(leader).host.transferLeadership('p0', to);
    await until('the leader sent TimeoutNow', () => timeouts() > 0);
    expect(await moved).toBe(to);
    expect(store(c, leader).inFlight).toBeGreaterThan(0);
    store(c, leader).release();
    expect(w.violations).toEqual([]);
  });
});
