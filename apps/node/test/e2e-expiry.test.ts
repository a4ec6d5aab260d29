import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster as Cluster, type ProcCluster, poll } from './helpers/processes.js';

const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

function redis(port: number): Redis {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  clients.push(r);
  return r;
}

describe('keys set with an expiry', () => {
  it('expire on every replica at once, the sweeper removes them from every store, and the replicas check equal', async (ctx) => {
    cluster = await Cluster.create(3, ['--heartbeat-ms', '50', '--election-timeout-ms', '300']);
    const c = cluster;
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const nodes = c.nodes.map((n) => ({ node: n, redis: redis(n.resp) }));

    const w = redis(leader.resp).pipeline();
    for (let i = 0; i < 20; i++) w.set(`short${i}`, 'v', 'PX', 1500);
    w.set('long', 'v', 'EX', 600);
    w.set('forever', 'v');
    await w.exec();
    // Each replica applied the writes; reads through every node see the keys that have not expired.
    const written = (await c.status(leader))!.commit;
    for (const { node, redis: r } of nodes) {
      await poll(`${node.id} to apply ${written}`, 10_000, async () => {
        const s = await c.status(node);
        return s && s.applied >= written ? s : undefined;
      });
      expect(await r.exists('long', 'forever')).toBe(2);
      expect(await r.ttl('long')).toBeGreaterThan(590);
      expect(await r.ttl('forever')).toBe(-1);
    }

    // Past the deadline no node shows the keys; the sweeper's deletes reach every replica's store.
    // (The short keys' deadline was set by the leader's clock, 1.5 s after it took the write.)
    await poll('the short keys to expire', 5_000, async () =>
      (await nodes[0]!.redis.exists(...Array.from({ length: 20 }, (_, i) => `short${i}`))) === 0 ? true : undefined,
    );
    for (const { redis: r } of nodes) {
      expect(await r.mget('short0', 'short19', 'long', 'forever')).toEqual([null, null, 'v', 'v']);
      expect(await r.pttl('short5')).toBe(-2);
    }
    for (const { node } of nodes) {
      await poll(`${node.id}'s store to hold only the 2 live keys`, 5_000, async () => {
        const s = await c.status(node);
        return s?.keys === 2 ? s : undefined;
      });
    }

    // The replicas agree: a consistency check run from a follower compares every replica's digest.
    const follower = c.nodes.find((n) => n !== leader)!;
    // A replica whose digest was not taken in time (a loaded machine) makes the check `incomplete`, which says
    // nothing either way: check again. `inconsistent` ends the wait and fails.
    let checks = 0;
    const report = await poll('a consistency check every replica answered', 20_000, async () => {
      const res = await fetch(`http://127.0.0.1:${follower.http}/v1/admin/consistency-check`, { method: 'POST' });
      expect(res.status).toBe(200);
      checks++;
      const r = (await res.json()) as { verdict: string; replicas: { node: string; digest: string | null }[] };
      return r.verdict === 'incomplete' ? undefined : r;
    });
    expect(report.verdict).toBe('consistent');
    expect(report.replicas.map((r) => r.node).sort()).toEqual(['n1', 'n2', 'n3']);
    expect(new Set(report.replicas.map((r) => r.digest)).size).toBe(1);
    expect((await c.status(follower))?.consistency).toMatchObject({ checks, mismatches: 0 });
    const metrics = await (await fetch(`http://127.0.0.1:${follower.http}/metrics`)).text();
    expect(metrics).toMatch(/cohort_consistency_checks_total\{verdict="consistent"\} 1/);
  }, 60_000);
});
