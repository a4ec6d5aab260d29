import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster, type ProcNode, poll } from './helpers/processes.js';

const FAST = ['--heartbeat-ms', '50', '--election-timeout-ms', '300'];

let cluster: ProcCluster | undefined;
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

function client(n: ProcNode): Redis {
  const r = new Redis({ port: n.resp, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
  clients.push(r);
  return r;
}

describe('RESP read modes on three cohort processes', () => {
  it('serves reads under the lease on a lease-mode leader, and READONLY reads on a follower without any leader', async (ctx) => {
    const config = join(process.env.TMPDIR ?? '/tmp', `cohort-e2e-read-modes-${process.pid}.json`);
    writeFileSync(config, JSON.stringify({ node: { id: 'n1' }, raft: { leaseReads: true } }));
    cluster = await ProcCluster.create(3, ['--config', config, ...FAST]);
    const c = cluster;
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const follower = c.nodes.find((n) => n !== leader)!;

    // Lease mode: the leader answers reads (under its lease, or through ReadIndex when it does not hold).
    const onLeader = client(leader);
    await onLeader.set('k', 'v1');
    await onLeader.rpush('l', 'a', 'b');
    expect(await onLeader.get('k')).toBe('v1');
    expect(await onLeader.lrange('l', 0, -1)).toEqual(['a', 'b']);
    expect(await onLeader.mget('k', 'none')).toEqual(['v1', null]);
    // The HTTP API shows a hash or list by its type, fields and items.
    await onLeader.hset('h', 'f', '1', 'g', '');
    const http = async (key: string): Promise<unknown> =>
      (await fetch(`http://127.0.0.1:${leader.http}/v1/kv/${key}`, { signal: AbortSignal.timeout(5000) })).json();
    expect(await http('l')).toMatchObject({ key: 'l', kind: 'list', items: ['a', 'b'], version: 1 });
    expect(await http('h')).toMatchObject({
      kind: 'hash',
      fields: [
        ['f', '1'],
        ['g', ''],
      ],
    });

    // A follower's READONLY connection reads its own state; a pipeline still reads what it wrote before.
    const stale = client(follower);
    expect(await stale.call('READONLY')).toBe('OK');
    await poll('the follower to apply k', 10_000, async () => ((await stale.get('k')) === 'v1' ? true : undefined));
    const [[, set], [, got]] = (await stale.pipeline().set('k', 'v2').get('k').exec()) as [
      [unknown, unknown],
      [unknown, unknown],
    ];
    expect(set).toBe('OK');
    expect(['v1', 'v2']).toContain(got);
    await poll('the follower to apply v2', 10_000, async () => ((await stale.get('k')) === 'v2' ? true : undefined));
    const plain = client(follower);
    expect(await plain.get('k')).toBe('v2');

    // The leader and the other follower are gone: no leader can be elected.
    await Promise.all(c.nodes.filter((n) => n !== follower).map((n) => c.kill(n)));
    await expect(plain.get('k')).rejects.toThrow(/CLUSTERDOWN|NOT_LEADER|TIMEOUT/);
    expect(await stale.get('k')).toBe('v2');
    expect(await stale.lrange('l', 0, -1)).toEqual(['a', 'b']);
    expect(await stale.type('l')).toBe('list');
    // Writes still need the leader.
    await expect(stale.set('k', 'v3')).rejects.toThrow(/CLUSTERDOWN|NOT_LEADER|TIMEOUT/);
    expect(await stale.call('READWRITE')).toBe('OK');
    await expect(stale.get('k')).rejects.toThrow(/CLUSTERDOWN|NOT_LEADER|TIMEOUT/);
  }, 60_000);
});
