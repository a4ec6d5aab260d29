import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster, type ProcNode, poll } from './helpers/processes.js';

// Heartbeat 50 ms, election timeout 300..600 ms: the quorum window is (12 + 1) ticks = 650 ms.
const FAST = ['--heartbeat-ms', '50', '--election-timeout-ms', '300'];
const WINDOW_MS = 650;
/** What a CLUSTERDOWN answer may take past the window on a busy 2-core machine; the request timeout is 5000 ms. */
const MARGIN_MS = 1500;

let cluster: ProcCluster | undefined;
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

async function ready(n: ProcNode): Promise<{ status: number; body: Record<string, unknown> } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${n.http}/readyz`, { signal: AbortSignal.timeout(1000) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

/** A timed request: its HTTP status, error code and message, and how long it took. */
async function timed(
  n: ProcNode,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ ms: number; status: number; code: string | undefined; message: string | undefined }> {
  const t = performance.now();
  const res = await fetch(`http://127.0.0.1:${n.http}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(10_000),
  });
  const json = (await res.json()) as { error?: { code: string; message: string } };
  return { ms: performance.now() - t, status: res.status, code: json.error?.code, message: json.error?.message };
}

describe('a cluster that lost its quorum says so', () => {
  it('answers CLUSTERDOWN naming the unreachable members within about an election timeout; /readyz follows', async () => {
    cluster = await ProcCluster.create(3, FAST);
    const c = cluster;
    c.startAll();
    await poll('every node ready', 30_000, async () => {
      const all = await Promise.all(c.nodes.map(ready));
      return all.every((r) => r?.status === 200) ? true : undefined;
    });
    const leader = await c.leader(c.nodes, 10_000);
    expect((await timed(leader, 'PUT', '/v1/kv/k', { value: 'v' })).status).toBe(200);

    // A follower survives: it loses its leader and the other follower at once.
    const survivor = c.nodes.find((n) => n.id !== leader.id)!;
    const dead = c.nodes.filter((n) => n !== survivor);
    await Promise.all(dead.map((n) => c.kill(n)));
    const get = await timed(survivor, 'GET', '/v1/kv/k');
    expect(get.status).toBe(503);
    expect(get.code).toBe('CLUSTERDOWN');
    for (const d of dead) expect(get.message).toContain(d.id);
    expect(get.ms).toBeLessThan(WINDOW_MS + MARGIN_MS);
    // Once down, a write answers at once, and so does RESP.
    const put = await timed(survivor, 'PUT', '/v1/kv/k', { value: 'w' });
    expect([put.status, put.code]).toEqual([503, 'CLUSTERDOWN']);
    expect(put.ms).toBeLessThan(MARGIN_MS);
    const redis = new Redis({ port: survivor.resp, host: '127.0.0.1', maxRetriesPerRequest: 0, lazyConnect: true });
    clients.push(redis);
    await redis.connect();
    await expect(redis.get('k')).rejects.toThrow(/^CLUSTERDOWN .*cannot reach/);
    const r = await ready(survivor);
    expect(r?.status).toBe(503);
    expect((r?.body.error as { code: string }).code).toBe('CLUSTERDOWN');

    // Back to three, then the leader survives: its pending and new requests hear CLUSTERDOWN.
    for (const d of dead) c.start(d);
    await poll('every node ready again', 30_000, async () => {
      const all = await Promise.all(c.nodes.map(ready));
      return all.every((x) => x?.status === 200) ? true : undefined;
    });
    const lead = await c.leader(c.nodes, 10_000);
    const followers = c.nodes.filter((n) => n !== lead);
    await Promise.all(followers.map((n) => c.kill(n)));
    const w = await timed(lead, 'PUT', '/v1/kv/k2', { value: 'x' });
    expect([w.status, w.code]).toEqual([503, 'CLUSTERDOWN']);
    for (const f of followers) expect(w.message).toContain(f.id);
    expect(w.ms).toBeLessThan(WINDOW_MS + MARGIN_MS);
    const lr = await ready(lead);
    expect(lr?.status).toBe(503);

    // One follower back: a quorum again, and the cluster serves.
    c.start(followers[0]!);
    await poll('the survivor ready with one follower back', 30_000, async () =>
      (await ready(lead))?.status === 200 ? true : undefined,
    );
    const again = await poll('a write accepted', 10_000, async () => {
      const x = await timed(lead, 'PUT', '/v1/kv/k3', { value: 'y' });
      return x.status === 200 ? x : undefined;
    });
    expect(again.status).toBe(200);
  }, 90_000);
});

describe('a leader that stalls', () => {
  it('says when it resumes that its loop stalled past the election timeout, and why; the others elected another', async () => {
    // The last test's cluster and clients go first.
    for (const r of clients.splice(0)) r.disconnect();
    await cluster?.killAll();
    cluster = await ProcCluster.create(3, FAST);
    const c = cluster;
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const pid = leader.child?.pid;
    expect(pid).toBeTypeOf('number');
    // Its stall watch runs once it started, and samples the groups it leads every 50 ms: a stop within a
    // sample of the election would find it leading none.
    await poll('the leader started and leading p0 for 300 ms', 10_000, async () => {
      if (!leader.log.includes('"node started"')) return undefined;
      const res = await fetch(`http://127.0.0.1:${leader.http}/v1/partitions`, { signal: AbortSignal.timeout(1000) });
      const { partitions } = (await res.json()) as {
        partitions: { partition: number; role?: string; leaderForMs?: number }[];
      };
      const p0 = partitions.find((p) => p.partition === 0);
      return p0?.role === 'leader' && (p0.leaderForMs ?? 0) >= 300 ? true : undefined;
    });
    // Stopped, the leader's thread is neither running nor waiting for a CPU: its stall is off CPU.
    const stoppedAt = Date.now();
    process.kill(pid as number, 'SIGSTOP');
    const others = c.nodes.filter((n) => n !== leader);
    try {
      // Stopped past the election timeout (300..600 ms) for sure, and until the others elected another.
      await c.leader(others, 10_000, leader.id);
      await poll('a stop of 700 ms', 2_000, async () => (Date.now() - stoppedAt >= 700 ? true : undefined));
    } finally {
      process.kill(pid as number, 'SIGCONT');
    }
    const line = await poll('the resumed leader reports its stall', 10_000, async () => {
      // Startup may have stalled too (three nodes starting on a small machine): the line after the stop.
      for (const l of leader.log.split('\n')) {
        if (!l.includes('event loop stalled')) continue;
        const rec = JSON.parse(l) as {
          time: number;
          msg: string;
          cause: string;
          stalledMs: number;
          leaderOf: string[];
        };
        if (rec.time >= stoppedAt) return rec;
      }
      return undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${c.notableLog()}`);
    });
    expect(line.msg, JSON.stringify(line)).toMatch(/past the election timeout while leading/);
    expect(line.cause).toBe('off CPU');
    expect(line.stalledMs).toBeGreaterThanOrEqual(300);
    expect(line.leaderOf.length).toBeGreaterThan(0);
    // The new leader serves; the old one follows it.
    await c.leader(c.nodes, 10_000, leader.id);
  }, 60_000);
});
