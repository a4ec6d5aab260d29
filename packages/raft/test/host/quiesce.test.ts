import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, cmd, until } from './cluster.js';

const GROUPS = Array.from({ length: 20 }, (_, i) => `g${i}`);

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

function allQuiescent(c: Cluster): boolean {
  return c.ids.every((id) => c.node(id).host.quiescentGroups() === GROUPS.length);
}

/** Frames sent from now on, over `ms` of real time. */
async function framesDuring(c: Cluster, ms: number): Promise<number> {
  const before = c.hub.sent.length;
  await new Promise((r) => setTimeout(r, ms));
  return c.hub.sent.length - before;
}

describe('RaftHost coalesced heartbeats and quiescence', () => {
  it('sends one heartbeat frame per peer per tick for all the groups two nodes share', async () => {
    cluster = new Cluster(['a', 'b', 'c'], GROUPS, { tickMs: 20 });
    const c = cluster;
    for (const g of GROUPS) await until(`a leader of ${g}`, () => c.leader(g));
    // Let elections and their appends settle, then count a quiet second: 50 ticks.
    await new Promise((r) => setTimeout(r, 200));
    const stats = c.ids.map((id) => c.node(id).host.stats());
    const frames = await framesDuring(c, 1000);
    const after = c.ids.map((id) => c.node(id).host.stats());
    const carried = after.reduce((n, s, i) => n + s.heartbeatsCoalesced - (stats[i]?.heartbeatsCoalesced ?? 0), 0);
    // Uncoalesced, the 20 groups' heartbeats and answers alone would take ~2 * 20 * 2 * 50 frames a second per leader.
    expect(carried).toBeGreaterThan(frames * 5);
    // Ticks every 20 ms on 3 nodes, each sending to 2 peers at most twice a tick (heartbeats, answers): bounded by the nodes, not the groups.
    expect(frames).toBeLessThan(3 * 2 * 2 * 55);
    // A quiet second carries nothing but coalesced heartbeats: they alone keep each leader's quorum heard.
    for (const g of GROUPS) {
      const leader = c.leader(g) as string;
      expect(c.node(leader).host.status(g).quorum).toMatchObject({ state: 'ok', unreachable: [] });
      for (const id of c.ids) expect(c.node(id).host.status(g).quorum.state).toBe('ok');
    }
  });

  it('idle groups go quiescent on every replica and send nothing; a proposal wakes its group only', async () => {
    cluster = new Cluster(['a', 'b', 'c'], GROUPS, { quiesce: true });
    const c = cluster;
    for (const g of GROUPS) await until(`a leader of ${g}`, () => c.leader(g));
    await until('every group quiescent on every node', () => allQuiescent(c));
    expect(await framesDuring(c, 200)).toBe(0);
    // Silent for longer than the quorum window, quiescent groups still count their peers live.
    const window = c.node('a').host.status('g0').quorum.windowMs;
    await new Promise((r) => setTimeout(r, window + 100));
    for (const g of GROUPS) {
      const leader = c.leader(g) as string;
      expect(c.node(leader).host.status(g).quorum).toMatchObject({ state: 'ok', unreachable: [] });
      for (const id of c.ids) expect(c.node(id).host.status(g).quorum.state).toBe('ok');
    }
    const leader = c.leader('g3') as string;
    await c.node(leader).host.propose('g3', cmd('x=1'));
    for (const id of c.ids) expect(c.node(id).host.status('g5').quiescent).toBe(true);
    await until('every replica applies the write', () =>
      c.ids.every((id) => c.node(id).sms.get('g3')?.map.get('x') === '1'),
    );
    await until('g3 quiescent again', () => allQuiescent(c));
    const s = c.node(leader).host.stats();
    expect(s.groupsWoken).toBeGreaterThan(0);
    expect(s.groupsQuiesced).toBeGreaterThan(GROUPS.length / 3);
    // Reads wake a quiescent leader and are answered.
    await c.node(leader).host.readIndex('g3');
  });

  it('followers told the leader is down wake and elect a new leader; without the report they stay quiescent', async () => {
    cluster = new Cluster(['a', 'b', 'c'], GROUPS, { quiesce: true });
    const c = cluster;
    for (const g of GROUPS) await until(`a leader of ${g}`, () => c.leader(g));
    await until('every group quiescent on every node', () => allQuiescent(c));
    const old = c.leader('g0') as string;
    const led = GROUPS.filter((g) => c.leader(g) === old);
    c.hub.down.add(old);
    const others = c.ids.filter((id) => id !== old);
    // Ticks stopped: nobody notices the leader is gone.
    await new Promise((r) => setTimeout(r, 300));
    expect(c.leader('g0', others)).toBeUndefined();
    for (const id of others) c.node(id).host.peerDown(old);
    for (const g of led) await until(`a new leader of ${g}`, () => c.leader(g, others));
    const next = c.leader('g0', others) as string;
    await c.node(next).host.propose('g0', cmd('after=1'));
    // The old leader comes back: it learns the new term and catches up.
    c.hub.down.delete(old);
    for (const id of others) c.node(id).host.peerUp(old);
    await until('the old leader applies the write', () => c.node(old).sms.get('g0')?.map.get('after') === '1');
  });

  it('a quiescent leader cut off from its followers serves no read, and steps down once woken', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { quiesce: true, requestTimeoutMs: 500 });
    const c = cluster;
    const old = await until('a leader', () => c.leader());
    await c.node(old).host.propose('p0', cmd('v=1'));
    await until('quiescent', () => c.ids.every((id) => c.node(id).host.status('p0').quiescent));
    c.hub.down.add(old);
    const others = c.ids.filter((id) => id !== old);
    for (const id of others) c.node(id).host.peerDown(old);
    const next = await until('a new leader', () => c.leader('p0', others));
    await c.node(next).host.propose('p0', cmd('v=2'));
    // The old leader still believes it leads; a read there must not be answered from its stale state.
    expect(c.node(old).host.isLeader('p0')).toBe(true);
    await expect(c.node(old).host.readIndex('p0')).rejects.toThrow();
    await until('the cut-off leader steps down', () => !c.node(old).host.isLeader('p0'));
  });

  it("a follower told its leader is down does not quiesce on that leader's word", async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { quiesce: true });
    const c = cluster;
    const leader = await until('a leader', () => c.leader());
    const [told, other] = c.ids.filter((id) => id !== leader) as [string, string];
    c.node(told).host.peerDown(leader);
    await c.node(leader).host.propose('p0', cmd('v=1'));
    // The told follower's election clock keeps running, and its campaigns wake the others now and then:
    // the other follower quiesces at least once, the told one never.
    await until('the other follower quiesced', () => c.node(other).host.stats().groupsQuiesced > 0);
    for (let i = 0; i < 20; i++) {
      expect(c.node(told).host.status('p0').quiescent).toBe(false);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(c.node(told).host.stats().groupsQuiesced).toBe(0);
  });

  it('splits coalesced heartbeats over several frames when one would pass the frame limit', async () => {
    cluster = new Cluster(['a', 'b', 'c'], GROUPS, { tickMs: 20 });
    const c = cluster;
    // About a dozen heartbeats per frame.
    for (const id of c.ids) (c.hub.nodes.get(id) as unknown as { maxFrameBytes: number }).maxFrameBytes = 256;
    for (const g of GROUPS) await until(`a leader of ${g}`, () => c.leader(g));
    const terms = () => GROUPS.map((g) => c.node(c.leader(g) as string).host.status(g).term);
    const before = terms();
    const frames = c.ids.reduce((n, id) => n + c.node(id).host.stats().heartbeatFramesSent, 0);
    await new Promise((r) => setTimeout(r, 300));
    // Leaders kept their terms: every group's heartbeats arrived.
    expect(terms()).toEqual(before);
    const s = c.ids.map((id) => c.node(id).host.stats());
    const sent = s.reduce((n, x) => n + x.heartbeatFramesSent, 0) - frames;
    const carried = s.reduce((n, x) => n + x.heartbeatsCoalesced, 0);
    expect(sent).toBeGreaterThan(0);
    expect(carried / s.reduce((n, x) => n + x.heartbeatFramesSent, 0)).toBeLessThan(20);
  });
});
