import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster as Cluster, type ProcCluster, poll } from './helpers/processes.js';

// Fast timing so the whole scenario stays well under a minute.
const HEARTBEAT_MS = 50;
const ELECTION_MS = 300;
const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

function redis(port: number): Redis {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
  clients.push(r);
  return r;
}

afterAll(async () => {
  for (const c of clients) c.disconnect();
  if (cluster) {
    await cluster.killAll();
    rmSync(cluster.root, { recursive: true, force: true });
  }
});

describe('three cohort processes', () => {
  it('replicate writes, survive SIGKILL of the leader, and a restarted node catches up', async (ctx) => {
    cluster = await Cluster.create(3, [
      '--heartbeat-ms',
      String(HEARTBEAT_MS),
      '--election-timeout-ms',
      String(ELECTION_MS),
      '--log-level',
      'info',
    ]);
    const c = cluster;
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 45_000);
    const others = c.nodes.filter((n) => n !== leader);

    // 100 writes through one follower, read back through the other.
    const writer = redis(others[0]!.resp);
    const writes = writer.pipeline();
    for (let i = 0; i < 100; i++) writes.set(`key${i}`, `value${i}`);
    expect(await writes.exec()).toEqual(Array.from({ length: 100 }, () => [null, 'OK']));
    const reader = redis(others[1]!.resp);
    const values = await reader.mget(...Array.from({ length: 100 }, (_, i) => `key${i}`));
    expect(values).toEqual(Array.from({ length: 100 }, (_, i) => `value${i}`));
    // Concurrent INCRs through all three nodes each apply exactly once.
    const counters = c.nodes.map((n) => redis(n.resp));
    await Promise.all(
      counters.map(async (r) => {
        const p = r.pipeline();
        for (let i = 0; i < 30; i++) p.incr('counter');
        await p.exec();
      }),
    );
    expect(await reader.get('counter')).toBe('90');

    // The leader's metrics show the replicated writes and its group-committed store writes.
    const metrics = await (await fetch(`http://127.0.0.1:${leader.http}/metrics`)).text();
    const metric = (name: string): number =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);
    // The 100 pipelined SETs are two entries (up to 64 writes each, merged by the follower that took them), the
    // INCRs one per connection.
    expect(metric('cohort_raft_entries_applied_total')).toBeGreaterThanOrEqual(5);
    const followerMetrics = await (await fetch(`http://127.0.0.1:${others[0]!.http}/metrics`)).text();
    expect(Number(/^cohort_resp_merged_writes_total (\S+)$/m.exec(followerMetrics)?.[1])).toBeGreaterThanOrEqual(100);
    expect(metric('cohort_raft_store_writes_total')).toBeGreaterThan(0);
    expect(metric('cohort_raft_is_leader')).toBe(1);
    // Each phase of the leader's proposals is timed: the 100 forwarded SETs and the INCRs included,
    // and the replies of the 30 INCRs that arrived at the leader itself.
    for (const phase of ['persisted', 'committed', 'applied'])
      expect(metric(`cohort_raft_proposal_phase_seconds_count\\{phase="${phase}"\\}`)).toBeGreaterThan(0);
    expect(metric('cohort_raft_proposal_phase_seconds_count\\{phase="replied"\\}')).toBeGreaterThan(0);
    expect(metric('cohort_raft_messages_sent_before_write_total')).toBeGreaterThan(0);

    // SIGKILL the leader: the two others elect a new one within a few election timeouts.
    await c.kill(leader);
    const killedAt = Date.now();
    const next = await c.leader(others, 10 * ELECTION_MS, leader.id);
    const failoverMs = Date.now() - killedAt;
    expect(next.id).not.toBe(leader.id);
    process.stdout.write(`failover: new leader ${next.id} after ${failoverMs} ms\n`);

    // Every acknowledged write survived; new writes succeed.
    const survivor = redis(others[0]!.resp);
    expect(await survivor.mget(...Array.from({ length: 100 }, (_, i) => `key${i}`))).toEqual(
      Array.from({ length: 100 }, (_, i) => `value${i}`),
    );
    const after = survivor.pipeline();
    for (let i = 0; i < 20; i++) after.set(`after${i}`, `new${i}`);
    expect(await after.exec()).toEqual(Array.from({ length: 20 }, () => [null, 'OK']));
    expect(await redis(others[1]!.resp).get('after19')).toBe('new19');

    // Restart the killed node on its data: it catches up to the others' applied index and serves the new writes.
    c.start(leader);
    const target = Math.max(...(await Promise.all(others.map(async (n) => (await c.status(n))?.applied ?? 0))));
    await poll(`${leader.id} to apply up to ${target}`, 15_000, async () => {
      const s = await c.status(leader);
      return s && s.applied >= target ? s : undefined;
    });
    const back = redis(leader.resp);
    expect(await back.get('after19')).toBe('new19');
    expect(await back.get('key0')).toBe('value0');

    // SIGTERM shuts a node down gracefully: exit status 0, and the others keep serving.
    back.disconnect();
    expect(await c.terminate(leader)).toBe(0);
    expect(leader.log).toMatch(/node stopped/);
    expect(await survivor.set('last', '1')).toBe('OK');
  }, 90_000);
});
