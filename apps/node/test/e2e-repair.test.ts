import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster as Cluster, type ProcCluster, type ProcNode, poll } from './helpers/processes.js';

const clients: Redis[] = [];
const clusters: ProcCluster[] = [];

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(clusters.map((c) => c.killAll()));
});

const RESTORED = /state restored from a healthy replica: serving again/;

/**
 * Flips the stored value of `key` in a running node's database without fixing its checksum (a disk fault),
 * once the row is in the file: the node's writer may hold an applied write up to `--writer-apply-batch-ms`.
 */
async function corruptRow(node: ProcNode, key: string): Promise<void> {
  const db = new Database(join(node.dataDir, 'cohort.db'));
  try {
    db.pragma('busy_timeout = 5000');
    const update = db.prepare('UPDATE kv SET value = ? WHERE key = ?');
    await poll(`${node.id}'s row of ${key} in its file`, 5_000, async () =>
      update.run(Buffer.from('garbage'), Buffer.from(key)).changes > 0 ? true : undefined,
    );
  } finally {
    db.close();
  }
}

function redis(node: ProcNode): Redis {
  const r = new Redis({ port: node.resp, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  clients.push(r);
  return r;
}

/** Polls until every node applied what the leader had committed, and returns their statuses. */
async function allApplied(c: ProcCluster, leader: ProcNode, ms: number) {
  const target = (await c.status(leader))!.commit;
  return poll(`every node to apply ${target}`, ms, async () => {
    const all = await Promise.all(c.nodes.map((n) => c.status(n)));
    return all.every((s) => s && !s.repairing && s.applied >= target) ? all : undefined;
  });
}

describe('a node whose copy of the data is corrupt', () => {
  it('restores it from a healthy replica without stopping, as follower and as leader', async (ctx) => {
    const c = await Cluster.create(3, ['--heartbeat-ms', '50', '--election-timeout-ms', '300']);
    clusters.push(c);
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const w = redis(leader);
    for (let i = 0; i < 50; i++) await w.set(`k${i}`, `v${i}`);
    // Written once: a key written again has the row its last write left in the row cache, and an apply reads that.
    await w.incrby('counter', 5);
    await allApplied(c, leader, 10_000);

    // A follower's row goes bad; the next INCR makes it read the row while applying.
    const follower = c.nodes.find((n) => n !== leader)!;
    await corruptRow(follower, 'counter');
    expect(await w.incr('counter')).toBe(6);
    await poll('the follower to restore its state', 15_000, async () =>
      RESTORED.test(follower.log) ? true : undefined,
    );
    expect(follower.child?.exitCode).toBeNull();
    await w.incr('counter');

    // The leader's row goes bad; a read of it finds out: the leader hands its leadership over and
    // restores its state while the others serve.
    const lead = await c.leader(c.nodes, 10_000);
    await corruptRow(lead, 'k7');
    // The read that meets the bad row is retried by the node where the leadership went: the client sees the value.
    expect(await redis(lead).get('k7')).toBe('v7');
    expect(lead.log).toMatch(/KV row for key 6b37 is corrupt/);
    const next = await c.leader(c.nodes, 10_000, lead.id);
    await poll('the old leader to restore its state', 15_000, async () => (RESTORED.test(lead.log) ? true : undefined));
    expect(lead.child?.exitCode).toBeNull();
    const r = redis(next);
    expect(await r.get('k7')).toBe('v7');
    expect(await r.incr('counter')).toBe(8);

    // Every replica holds the same rows again, and says so.
    const statuses = await allApplied(c, next, 10_000);
    expect(new Set(statuses.map((s) => s!.keys))).toEqual(new Set([51]));
    // A replica that does not answer its digest within the check's 2 s (a loaded machine) makes the check
    // `incomplete`, which says nothing either way: check again. `inconsistent` ends the wait and fails.
    const report = await poll('a consistency check every replica answered', 20_000, async () => {
      const res = await fetch(`http://127.0.0.1:${lead.http}/v1/admin/consistency-check`, { method: 'POST' });
      const r = (await res.json()) as { verdict: string };
      return r.verdict === 'incomplete' ? undefined : r;
    });
    expect(report.verdict).toBe('consistent');
    const metrics = await (await fetch(`http://127.0.0.1:${lead.http}/metrics`)).text();
    expect(metrics).toMatch(/cohort_replica_repairs_done_total(\{[^}]*\})? 1/);
  }, 90_000);
});
