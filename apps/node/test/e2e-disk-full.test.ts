import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { DISK_FULL_GATE_ENV } from '../src/open-store.js';
import { ProcCluster as Cluster, type ProcCluster, poll } from './helpers/processes.js';

const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

function redis(port: number): Redis {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    maxRetriesPerRequest: 1,
    commandTimeout: 5_000,
    retryStrategy: () => null,
  });
  r.on('error', () => {});
  clients.push(r);
  return r;
}

describe('a node whose disk fills up (SQLite reports SQLITE_FULL on its writer)', () => {
  it('stays up serving reads while the others take the writes, then commits what waited and catches up', async (ctx) => {
    cluster = await Cluster.create(3, ['--heartbeat-ms', '50', '--election-timeout-ms', '300']);
    const c = cluster;
    const gateOf = (id: string): string => join(c.root, `${id}.full`);
    for (const n of c.nodes) n.env = { [DISK_FULL_GATE_ENV]: gateOf(n.id) };
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    // The leader's disk fills: the hardest case, its leadership must move to a node that can write.
    const full = await c.leader(c.nodes, 30_000);
    const others = c.nodes.filter((n) => n !== full);
    const via = redis(others[0]!.resp);
    const acked = new Map<string, string>();
    const set = async (k: string, v: string): Promise<boolean> => {
      try {
        if ((await via.set(k, v)) !== 'OK') return false;
        acked.set(k, v);
        return true;
      } catch {
        // A write in flight when the leader's disk filled: its outcome is unknown, it is not counted.
        return false;
      }
    };
    expect(await set('before', '1')).toBe(true);

    writeFileSync(gateOf(full.id), '');
    const big = (i: number): string => `${i}:${'x'.repeat(8 * 1024)}`;
    await poll(`${full.id} to find its disk full`, 15_000, async () => {
      for (let i = 0; i < 5; i++) await set(`fill${acked.size}`, big(acked.size));
      return (await c.status(full))?.degraded?.includes('disk-full') ? true : undefined;
    });
    const newLeader = await c.leader(others, 15_000, full.id);
    // The cluster keeps taking writes through the two others.
    let written = 0;
    await poll('writes through the new leader', 10_000, async () => {
      for (; written < 20; written++) if (!(await set(`after${written}`, `v${written}`))) return undefined;
      return true;
    });

    // The full node is up: PING, reads (forwarded to the leader), its status says why it refuses writes.
    const r = redis(full.resp);
    expect(await r.ping()).toBe('PONG');
    expect(await r.get('before')).toBe('1');
    expect(await r.get('after19')).toBe('v19');
    const during = await c.status(full);
    expect(during?.degraded).toContain('disk-full');
    expect((during as { diskFull?: string } | undefined)?.diskFull).toMatch(/cannot grow \(database or disk is full\)/);
    await expect(r.set('refused', 'x')).rejects.toThrow(/UNAVAILABLE disk full: .*cannot grow/);
    expect(await r.info('persistence')).toMatch(/^aof_last_write_status:err\r?$/m);
    expect(await r.info('persistence')).toMatch(/^cohort_degraded:disk-full\r?$/m);
    const http = await fetch(`http://127.0.0.1:${full.http}/v1/kv/refused`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'x' }),
    });
    expect(http.status).toBe(503);
    expect(await http.json()).toMatchObject({
      error: { code: 'UNAVAILABLE', message: expect.stringMatching(/^disk full: /) },
    });
    const metrics = await (await fetch(`http://127.0.0.1:${full.http}/metrics`)).text();
    expect(metrics).toMatch(/^cohort_disk_full 1$/m);
    expect(full.child?.exitCode).toBeNull();

    // Space is freed: the waiting commit goes through and the node catches up, without a restart.
    rmSync(gateOf(full.id));
    const commit = (await c.status(newLeader))!.commit;
    await poll(`${full.id} to recover and apply ${commit}`, 15_000, async () => {
      const s = await c.status(full);
      return s && s.degraded === undefined && s.applied >= commit ? s : undefined;
    });
    expect(await r.set('recovered', 'yes')).toBe('OK');
    // Every acknowledged write is there, and in the recovered node's own copy too.
    const local = redis(full.resp);
    expect(await local.call('READONLY')).toBe('OK');
    await poll(`${full.id} to apply the last write`, 10_000, async () =>
      (await local.get('recovered')) === 'yes' ? true : undefined,
    );
    for (const [k, v] of acked) {
      expect(await via.get(k), k).toBe(v);
      expect(await local.get(k), `${k} on ${full.id}`).toBe(v);
    }
    expect(full.child?.exitCode).toBeNull();
  }, 60_000);

  it('in a partitioned cluster, past the grace period its replicas move to the other nodes', async (ctx) => {
    await cluster?.killAll();
    const c = await Cluster.create(4, [
      '--partitions',
      '3',
      '--replicas',
      '3',
      '--heartbeat-ms',
      '50',
      '--election-timeout-ms',
      '300',
      '--swim-probe-ms',
      '200',
      '--dead-grace',
      '1500',
    ]);
    cluster = c;
    const gateOf = (id: string): string => join(c.root, `${id}.full`);
    for (const n of c.nodes) n.env = { [DISK_FULL_GATE_ENV]: gateOf(n.id) };
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    type Meta = { partitions: { replicas: { node: string; role: string }[] }[] };
    // The map as a node that can write sees it (a full node cannot apply what the meta group commits).
    const meta = async (skip?: string): Promise<Meta | undefined> => {
      for (const n of c.nodes) {
        if (n.id === skip) continue;
        try {
          const res = await fetch(`http://127.0.0.1:${n.http}/v1/meta`, { signal: AbortSignal.timeout(1000) });
          if (res.ok) return (await res.json()) as Meta;
        } catch {
          // Try the next node.
        }
      }
      return undefined;
    };
    const holders = (m: Meta, id: string): number =>
      m.partitions.filter((p) => p.replicas.some((r) => r.node === id)).length;
    // Founded and balanced: 9 replicas on 4 nodes, every node holding some.
    const founded = await poll('the map placed on every node', 45_000, async () => {
      const m = await meta();
      return m && m.partitions.length === 3 && c.nodes.every((n) => holders(m, n.id) > 0) ? m : undefined;
    });
    const full = c.nodes.find((n) => holders(founded, n.id) > 0)!;
    const via = redis(c.nodes.find((n) => n !== full)!.resp);
    // Writes to every partition fill the node's disk (its commits fail with SQLITE_FULL).
    writeFileSync(gateOf(full.id), '');
    await poll(`${full.id} to find its disk full`, 15_000, async () => {
      for (let i = 0; i < 6; i++) await via.set(`fill{${i}}`, 'x'.repeat(8 * 1024)).catch(() => undefined);
      return (await c.status(full))?.degraded?.includes('disk-full') ? true : undefined;
    });
    // Past the grace period placement moves every replica off it, each partition back on 3 voters.
    let last: Meta | undefined;
    ctx.onTestFailed(() => {
      process.stderr.write(`last map: ${JSON.stringify(last?.partitions)}\n`);
    });
    const drained = await poll(`${full.id}'s replicas moved away`, 30_000, async () => {
      const m = await meta(full.id);
      last = m;
      return m &&
        holders(m, full.id) === 0 &&
        m.partitions.every((p) => p.replicas.length === 3 && p.replicas.every((r) => r.role === 'voter'))
        ? m
        : undefined;
    });
    expect(holders(drained, full.id)).toBe(0);
    // The cluster takes writes on every partition, and the full node is still up.
    for (let i = 0; i < 6; i++) expect(await via.set(`after{${i}}`, `v${i}`)).toBe('OK');
    expect(full.child?.exitCode).toBeNull();
    rmSync(gateOf(full.id));
  }, 90_000);
});
