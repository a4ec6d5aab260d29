// Partitioned replication on one machine: write throughput of 16 partitions
// against one group on the same 3 nodes (leaders spread over the nodes should
// use every core), and the time a 4-node cluster takes to re-replicate a dead
// node's data, per GB.
//
//   pnpm --filter @cohort/bench partitions [--seconds 10] [--connections 64] [--load-mb 64] [--out result.json]
//
// Both loads go through a cluster-aware ioredis client (`Redis.Cluster`), so
// every write reaches its partition's leader directly; 100-byte values, one
// key per write. The re-replication run loads --load-mb of 4 KiB values into
// 4 partitions (3 replicas each), SIGKILLs the node holding the most
// replicas, and times until every partition again has 3 voters on live nodes
// (the grace period before a dead node's replicas are replaced, --dead-grace,
// is reported apart). Run it on an idle machine: figures under load mean nothing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchCluster, type BenchNode, poll } from '@cohort/scale-bench/cluster';
import { Cluster as RedisCluster } from 'ioredis';
import { latencySummary } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    'load-mb': { type: 'string', default: '64' },
    out: { type: 'string' },
    force: { type: 'boolean', default: false },
  },
  // pnpm passes the `--` of `pnpm --filter @cohort/bench partitions -- --seconds 10` through.
  args: process.argv.slice(2).filter((a) => a !== '--'),
});
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const LOAD_MB = Number(args['load-mb']);
const GRACE_MS = 3000;

interface MetaPartition {
  replicas: { node: string; role: string }[];
}
interface LocalPartition {
  local: boolean;
  role?: string;
}

async function getJson<T>(n: BenchNode, path: string): Promise<T | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${n.http}${path}`, { signal: AbortSignal.timeout(2000) });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

const alive = (n: BenchNode): boolean =>
  n.child !== undefined && n.child.exitCode === null && n.child.signalCode === null;

/** How many partitions each live node leads, once every partition has a leader. */
async function leaderCounts(c: BenchCluster, partitions: number): Promise<number[] | undefined> {
  const counts: number[] = [];
  let led = 0;
  for (const n of c.nodes) {
    if (!alive(n)) continue;
    const ps = (await getJson<{ partitions: LocalPartition[] }>(n, '/v1/partitions'))?.partitions;
    if (ps === undefined) return undefined;
    const mine = ps.filter((p) => p.local && p.role === 'leader').length;
    counts.push(mine);
    led += mine;
  }
  return led === partitions ? counts : undefined;
}

function clusterClient(c: BenchCluster): RedisCluster {
  return new RedisCluster(
    c.nodes.filter(alive).map((n) => ({ host: '127.0.0.1', port: n.resp })),
    { redisOptions: { maxRetriesPerRequest: 5 }, scaleReads: 'master' },
  );
}

interface Throughput {
  partitions: number;
  leadersPerNode: string;
  writesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU seconds per second of the three nodes together (2 cores: at most 2). */
  nodeCores: number;
}

async function throughput(partitions: number): Promise<Throughput> {
  const root = mkdtempSync(join(tmpdir(), 'cohort-partitions-bench-'));
  const c = await BenchCluster.create(root, 3, ['--partitions', String(partitions), '--log-level', 'warn']);
  try {
    c.startAll();
    // Every partition led, and the leaders spread by count (the meta leader balances every 2 s).
    const counts = await poll(`leaders of ${partitions} partitions spread over 3 nodes`, 120_000, async () => {
      const k = await leaderCounts(c, partitions);
      return k && Math.max(...k) - Math.min(...k) <= 1 ? k : undefined;
    });
    const clients = Array.from({ length: Math.min(CONNECTIONS, 16) }, () => clusterClient(c));
    const value = 'v'.repeat(100);
    await Promise.all(clients.map((r, i) => r.set(`warm:${i}`, value)));
    const cpu0 = c.nodes.map((n) => c.cpuSeconds(n) ?? 0);
    const lat: number[] = [];
    const started = performance.now();
    const end = Date.now() + SECONDS * 1000;
    let seq = 0;
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async (_, w) => {
        const r = clients[w % clients.length]!;
        while (Date.now() < end) {
          const t = performance.now();
          await r.set(`k:${w}:${seq++}`, value);
          lat.push(performance.now() - t);
        }
      }),
    );
    const secs = (performance.now() - started) / 1000;
    const cpu1 = c.nodes.map((n) => c.cpuSeconds(n) ?? 0);
    for (const r of clients) r.disconnect();
    return {
      partitions,
      leadersPerNode: counts.join('/'),
      writesPerSec: Math.round(lat.length / secs),
      ...latencySummary(lat),
      nodeCores: Number((cpu1.reduce((s, x, i) => s + x - cpu0[i]!, 0) / secs).toFixed(2)),
    };
  } finally {
    await c.stopAll();
    rmSync(root, { recursive: true, force: true });
  }
}

interface Rereplication {
  loadedMb: number;
  /** Bytes of the partitions that had a replica on the dead node (each copied once). */
  movedMb: number;
  /** From the SIGKILL to every partition on 3 live voters, and the same less the grace period. */
  totalSeconds: number;
  afterGraceSeconds: number;
  mbPerSec: number;
  secondsPerGb: number;
}

async function rereplication(): Promise<Rereplication> {
  const root = mkdtempSync(join(tmpdir(), 'cohort-rereplicate-bench-'));
  const partitions = 4;
  const c = await BenchCluster.create(root, 4, [
    '--partitions',
    String(partitions),
    '--replicas',
    '3',
    '--dead-grace',
    String(GRACE_MS),
    '--swim-probe-ms',
    '200',
    '--log-level',
    'warn',
  ]);
  try {
    c.startAll();
    const n1 = c.nodes[0]!;
    const settled = (m: { partitions: MetaPartition[] }, dead?: string): boolean =>
      m.partitions.length === partitions &&
      m.partitions.every(
        (p) => p.replicas.length === 3 && p.replicas.every((r) => r.role === 'voter' && r.node !== dead),
      );
    await poll('every partition on 3 voters', 120_000, async () => {
      const m = await getJson<{ partitions: MetaPartition[] }>(n1, '/v1/meta');
      return m && settled(m) && (await leaderCounts(c, partitions)) ? m : undefined;
    });
    // Load: 4 KiB values, 16 writers.
    const client = clusterClient(c);
    const value = 'x'.repeat(4096);
    const keys = Math.ceil((LOAD_MB * 1024 * 1024) / value.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < keys; i = next++) await client.set(`r:${i}`, value);
      }),
    );
    client.disconnect();
    const m = (await getJson<{ partitions: MetaPartition[] }>(n1, '/v1/meta'))!;
    // The node holding the most replicas (not n1, which the bench asks).
    const held = (id: string): number => m.partitions.filter((p) => p.replicas.some((r) => r.node === id)).length;
    const victim = c.nodes.slice(1).reduce((a, b) => (held(b.id) > held(a.id) ? b : a));
    const movedMb = (LOAD_MB * held(victim.id)) / partitions;
    const killed = performance.now();
    await c.kill(victim);
    await poll('every partition back on 3 live voters', 600_000, async () => {
      const now = await getJson<{ partitions: MetaPartition[] }>(n1, '/v1/meta');
      return now && settled(now, victim.id) ? now : undefined;
    });
    const totalSeconds = (performance.now() - killed) / 1000;
    const afterGraceSeconds = Math.max(0.001, totalSeconds - GRACE_MS / 1000);
    return {
      loadedMb: LOAD_MB,
      movedMb: Number(movedMb.toFixed(1)),
      totalSeconds: Number(totalSeconds.toFixed(1)),
      afterGraceSeconds: Number(afterGraceSeconds.toFixed(1)),
      mbPerSec: Number((movedMb / afterGraceSeconds).toFixed(1)),
      secondsPerGb: Math.round((afterGraceSeconds / movedMb) * 1024),
    };
  } finally {
    await c.stopAll();
    rmSync(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const load1 = loadavg()[0]!;
  if (load1 >= 1.5 && !args.force) {
    console.error(
      `load average ${load1.toFixed(2)} >= 1.5: figures would mean nothing; rerun on an idle machine (or --force)`,
    );
    process.exit(2);
  }
  console.log(`${cpus().length} cores; ${CONNECTIONS} writers, ${SECONDS} s per run, 100-byte values`);
  const runs: Throughput[] = [];
  for (const p of [1, 16]) {
    runs.push(await throughput(p));
    console.table([runs[runs.length - 1]]);
  }
  console.log(`16 partitions / 1: ${(runs[1]!.writesPerSec / runs[0]!.writesPerSec).toFixed(2)}x the writes`);
  const rerep = await rereplication();
  console.table([rerep]);
  if (args.out)
    writeFileSync(args.out, `${JSON.stringify({ seconds: SECONDS, runs, rereplication: rerep }, null, 2)}\n`);
}

await main();
