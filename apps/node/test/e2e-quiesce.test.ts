import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster, type ProcNode, poll, redisClient } from './helpers/processes.js';

const FAST = ['--heartbeat-ms', '50', '--election-timeout-ms', '300', '--quiesce'];

let cluster: ProcCluster | undefined;
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

const redis = (node: ProcNode): Redis => redisClient(node, clients);

/** A node's quiescence counters, from its Prometheus metrics. */
async function quiescence(node: ProcNode): Promise<{ quiesced: number; woken: number } | undefined> {
  try {
    const text = await (
      await fetch(`http://127.0.0.1:${node.http}/metrics`, { signal: AbortSignal.timeout(2000) })
    ).text();
    const read = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { quiesced: read('cohort_raft_groups_quiesced_total'), woken: read('cohort_raft_groups_woken_total') };
  } catch {
    return undefined;
  }
}

/** Whether the KV group p0 is quiescent on `node` now (the node also runs the meta group, counted in the metrics). */
async function p0Quiescent(node: ProcNode): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.http}/v1/partitions`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { partitions: { quiescent?: boolean }[] };
    return body.partitions[0]?.quiescent === true;
  } catch {
    return false;
  }
}

describe('a cluster whose idle groups go quiescent (--quiesce)', () => {
  it('goes quiet when idle, serves writes, and fails over when the failure detector reports the leader dead', async () => {
    cluster = await ProcCluster.create(3, FAST);
    const c = cluster;
    c.startAll();
    const leader = await c.leader(c.nodes, 20_000);
    const atLeader = redis(leader);
    expect(await atLeader.set('before', '1')).toBe('OK');
    // Idle now: every replica's group quiesces (more quiesces than wakes means it is quiescent now).
    await poll('the group quiescent on every node', 20_000, async () => {
      const all = await Promise.all(c.nodes.map(quiescence));
      const p0 = await Promise.all(c.nodes.map(p0Quiescent));
      return all.every((q) => q !== undefined && q.quiesced > q.woken) && p0.every(Boolean) ? true : undefined;
    });
    // A write wakes it and is served.
    expect(await atLeader.set('woken', '1')).toBe('OK');
    await poll('the group quiescent again on every node', 20_000, async () => {
      const p0 = await Promise.all(c.nodes.map(p0Quiescent));
      return p0.every(Boolean) ? true : undefined;
    });
    // No heartbeat will tell the followers the leader is gone: SWIM does, and they elect another one.
    atLeader.disconnect();
    await c.kill(leader);
    const rest = c.nodes.filter((n) => n !== leader);
    const next = await c.leader(rest, 30_000, leader.id);
    expect(await redis(next).set('after', '1')).toBe('OK');
    const other = rest.find((n) => n !== next) as ProcNode;
    expect(await redis(other).get('before')).toBe('1');
    expect(await redis(other).get('after')).toBe('1');
    expect(next.log).toMatch(/membership: NodeFailed|membership: NodeLeft/);
  }, 90_000);
});
