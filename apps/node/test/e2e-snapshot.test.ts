import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, ProcCluster as Cluster, type ProcCluster, poll } from './helpers/processes.js';

const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

afterAll(async () => {
  for (const c of clients) c.disconnect();
  if (cluster) {
    await cluster.killAll();
    rmSync(cluster.root, { recursive: true, force: true });
  }
});

describe('a node that missed compacted entries', () => {
  it('catches up from a snapshot, and its data directory checks clean', async (ctx) => {
    // Snapshot every 20 entries so the log the node missed is compacted away.
    cluster = await Cluster.create(3, [
      '--heartbeat-ms',
      '50',
      '--election-timeout-ms',
      '300',
      '--snapshot-entries',
      '20',
    ]);
    const c = cluster;
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 45_000);
    const lagging = c.nodes.find((n) => n !== leader)!;
    await c.kill(lagging);

    // 150 entries: one write at a time (a connection's pipelined writes would share one entry).
    const client = new Redis({ port: leader.resp, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    clients.push(client);
    for (let i = 0; i < 150; i++) expect(await client.set(`s${i}`, `v${i}`)).toBe('OK');
    const target = (await c.status(leader))!.applied;

    // The lagging node's data checks clean while it is stopped.
    const check = spawnSync(process.execPath, [CLI, 'check', lagging.dataDir], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/OK/);

    c.start(lagging);
    await poll(`${lagging.id} to apply up to ${target}`, 20_000, async () => {
      const s = await c.status(lagging);
      return s && s.applied >= target ? s : undefined;
    });
    const direct = new Redis({ port: lagging.resp, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    clients.push(direct);
    expect(await direct.mget('s0', 's75', 's149')).toEqual(['v0', 'v75', 'v149']);
    // The leader logged that it compacted: the node could only have caught up from a snapshot.
    expect(leader.log).toMatch(/snapshot taken: log compacted behind a snapshot marker/);
    // One snapshot per interval of 20 entries, not one per round.
    expect(leader.log.match(/snapshot taken: log compacted behind a snapshot marker/g)!.length).toBeLessThanOrEqual(10);
    expect(lagging.log).toMatch(/restored a snapshot from the leader: installed a streamed snapshot/);
  }, 90_000);
});
