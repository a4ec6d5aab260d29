import type { NodeId } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, cmd, raftMessages, until } from './cluster.js';

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

/**
 * A cluster whose heartbeats are rare (every 500 ms), so a read confirmed sooner was confirmed by its own
 * round or its hedge; records the heartbeats the leader sends (with a ReadIndex context or not).
 */
async function readCluster(readIndexHedgeMs: number): Promise<{
  c: Cluster;
  leader: NodeId;
  followers: NodeId[];
  beats: { to: NodeId; read: boolean }[];
}> {
  cluster = new Cluster(['a', 'b', 'c'], ['p0'], {
    tickMs: 50,
    electionTicks: 20,
    heartbeatTicks: 10,
    readIndexHedgeMs,
  });
  const c = cluster;
  const leader = await until('a leader', () => c.leader(), 10_000);
  await c.node(leader).host.propose('p0', cmd('warm=1'));
  const beats: { to: NodeId; read: boolean }[] = [];
  const t = c.hub.nodes.get(leader);
  if (t === undefined) throw new Error('no transport');
  t.onSend = (to, frame) => {
    for (const { message: m } of raftMessages(leader, to, frame)) {
      if (m.type === 'heartbeat') beats.push({ to, read: m.context.length > 0 });
    }
  };
  return { c, leader, followers: c.ids.filter((id) => id !== leader), beats };
}

/**
 * {@link readCluster}, then follower `b` the one a round asks (it alone answered the last one) stops answering
 * right after a heartbeat (the next is 500 ms away), and the `other` one, cut off until then, is back.
 */
async function askedFollowerGone(readIndexHedgeMs: number) {
  const r = await readCluster(readIndexHedgeMs);
  const [b, other] = r.followers as [NodeId, NodeId];
  r.c.hub.down.add(other);
  await r.c.node(r.leader).host.readIndex('p0');
  const n0 = r.beats.length;
  await until('a heartbeat', () => r.beats.slice(n0).some((x) => !x.read), 3000);
  r.c.hub.down.delete(other);
  r.c.hub.down.add(b);
  return { ...r, b, other };
}

/** How many heartbeats of a ReadIndex round each follower was sent, from `from` in `beats` on. */
function askedSince(beats: { to: NodeId; read: boolean }[], from: number): Map<NodeId, number> {
  const out = new Map<NodeId, number>();
  for (const b of beats.slice(from)) if (b.read) out.set(b.to, (out.get(b.to) ?? 0) + 1);
  return out;
}

describe('ReadIndex rounds that ask a quorum, hedged', () => {
  it('each round asks one follower of two; none is hedged while they answer', async () => {
    const { c, leader, beats } = await readCluster(250);
    const host = c.node(leader).host;
    const before = host.stats();
    const n0 = beats.length;
    for (let i = 0; i < 10; i++) await host.readIndex('p0');
    const after = host.stats();
    const rounds = after.readRounds - before.readRounds;
    expect(rounds).toBe(10);
    expect(after.readHedges - before.readHedges).toBe(0);
    // A heartbeat that fell due meanwhile carries the newest round to both: at most one more each 500 ms.
    const asked = [...askedSince(beats, n0).values()].reduce((a, b) => a + b, 0);
    expect(asked).toBeGreaterThanOrEqual(rounds);
    expect(asked).toBeLessThan(rounds + 5);
  });

  it('reads of one turn wait as one: one round, one promise; the next turn starts another', async () => {
    const { c, leader } = await readCluster(250);
    const host = c.node(leader).host;
    const before = host.stats().readRounds;
    const reads = Array.from({ length: 20 }, () => host.readIndex('p0'));
    expect(new Set(reads).size).toBe(1);
    await Promise.all(reads);
    expect(host.stats().readRounds - before).toBe(1);
    const next = host.readIndex('p0');
    expect(next).not.toBe(reads[0]);
    await next;
    expect(host.stats().readRounds - before).toBe(2);
  });

  it('a follower that stops answering once asked: the hedge asks the other, long before the next heartbeat', async () => {
    const hedgeMs = 100;
    const { c, leader, beats, b, other } = await askedFollowerGone(hedgeMs);
    const host = c.node(leader).host;
    const before = host.stats();
    const n1 = beats.length;
    const t0 = performance.now();
    await host.readIndex('p0');
    const ms = performance.now() - t0;
    expect(host.stats().readHedges - before.readHedges).toBe(1);
    // b was asked, then both (b had not answered).
    expect(askedSince(beats, n1)).toEqual(
      new Map([
        [b, 2],
        [other, 1],
      ]),
    );
    // Not before the hedge delay, and well before the heartbeat 500 ms after the one waited for.
    expect(ms).toBeGreaterThanOrEqual(hedgeMs - 5);
    expect(ms).toBeLessThan(420);
    // The other follower answered last: the next round asks it first, alone. A loaded machine can delay its
    // answer past the hedge delay; then the hedge asks both (b, down, once), never more than once.
    const n2 = beats.length;
    const hedgesBefore = host.stats().readHedges;
    await host.readIndex('p0');
    const hedged = host.stats().readHedges - hedgesBefore;
    expect(hedged).toBeLessThanOrEqual(1);
    expect(beats.slice(n2).find((x) => x.read)?.to).toBe(other);
    const expected = new Map([[other, 1 + hedged]]);
    if (hedged === 1) expected.set(b, 1);
    expect(askedSince(beats, n2)).toEqual(expected);
  });

  it('rounds started one after another while the follower asked is gone: hedged after the oldest waited the delay', async () => {
    const hedgeMs = 100;
    const { c, leader } = await askedFollowerGone(hedgeMs);
    const host = c.node(leader).host;
    // A read every 10 ms for 450 ms, each in a round of its own (rounds overlap), every one asking b first:
    // a hedge timed from the newest round would wait for the reads to stop, past the next heartbeat.
    const t0 = performance.now();
    const first = host.readIndex('p0').then(() => performance.now() - t0);
    const more: Promise<void>[] = [];
    while (performance.now() - t0 < 450) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      more.push(host.readIndex('p0'));
    }
    const ms = await first;
    await Promise.all(more);
    expect(ms).toBeGreaterThanOrEqual(hedgeMs - 5);
    expect(ms).toBeLessThan(350);
    expect(host.stats().readHedges).toBeGreaterThanOrEqual(1);
  });

  it('with readIndexHedgeMs 0 every round asks both followers at once', async () => {
    const { c, leader, followers, beats } = await readCluster(0);
    const host = c.node(leader).host;
    const n0 = beats.length;
    for (let i = 0; i < 5; i++) await host.readIndex('p0');
    const asked = askedSince(beats, n0);
    for (const f of followers) expect(asked.get(f)).toBeGreaterThanOrEqual(5);
    expect(host.stats().readHedges).toBe(0);
  });
});
