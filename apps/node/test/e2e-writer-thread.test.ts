import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMIT_GATE_ENV } from '../src/open-store.js';
import { ProcCluster as Cluster, type ProcCluster, poll } from './helpers/processes.js';

const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

function redis(port: number): Redis {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
  clients.push(r);
  return r;
}

describe('a node whose storage writer is stuck in a commit', () => {
  it('keeps answering PING, reads and writes from its event loop, and catches up once the commit completes', async (ctx) => {
    cluster = await Cluster.create(3, ['--heartbeat-ms', '50', '--election-timeout-ms', '300']);
    const c = cluster;
    for (const n of c.nodes) n.env = { [COMMIT_GATE_ENV]: join(c.root, `${n.id}.gate`) };
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const stuck = c.nodes.find((n) => n !== leader)!;
    const r = redis(stuck.resp);
    expect(await r.set('before', '1')).toBe('OK');

    // The follower's writer now holds every commit, as a disk stalled in an fsync would.
    const gate = join(c.root, `${stuck.id}.gate`);
    writeFileSync(gate, '');
    for (let i = 0; i < 20; i++) expect(await r.set(`k${i}`, `v${i}`)).toBe('OK');
    const written = (await c.status(leader))!.commit;
    // Its event loop still serves: PING, reads and writes (the cluster commits without it), its status.
    const t = Date.now();
    expect(await r.ping()).toBe('PONG');
    expect(await r.get('before')).toBe('1');
    expect(await r.mget('k0', 'k19')).toEqual(['v0', 'v19']);
    expect(Date.now() - t).toBeLessThan(5_000);
    const during = await c.status(stuck);
    expect(during).toBeDefined();
    // The writes it took part in are not applied there: its own appends are held.
    expect(during!.applied).toBeLessThan(written);

    // Once the commit completes the node applies everything it missed.
    rmSync(gate);
    await poll(`${stuck.id} to apply ${written}`, 10_000, async () => {
      const s = await c.status(stuck);
      return s && s.applied >= written ? s : undefined;
    });
    expect(await r.get('k7')).toBe('v7');
  }, 60_000);
});
