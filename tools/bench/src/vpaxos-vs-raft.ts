// A vpaxos partition against a raft partition on the same three nodes: write
// throughput and p50/p99 latency at 1 and 64 connections, bytes written to
// storage and written by syscalls (network, files, logs) per write, and
// failover time (leader or primary SIGKILL to the first acknowledged write).
//
//   pnpm --filter @cohort/bench vpaxos-vs-raft [--seconds 10] [--out result.json]
//
// p0 is raft (3 replicas), p1 vpaxos (2 replicas); each partition's load goes
// to its leader or primary directly (no forwarding), 100-byte values, one key
// per write. Run it on an idle machine: figures under load mean nothing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SlotMap } from '@cohort/kv';
import { BenchCluster, type BenchNode, poll } from '@cohort/scale-bench/cluster';
import { Redis } from 'ioredis';
import { latencySummary } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    out: { type: 'string' },
    force: { type: 'boolean', default: false },
  },
  // pnpm passes the `--` of `pnpm --filter @cohort/bench vpaxos-vs-raft -- --seconds 10` through.
  args: process.argv.slice(2).filter((a) => a !== '--'),
});
const SECONDS = Number(args.seconds);
const VALUE = 'v'.repeat(100);
const slots = new SlotMap(2);
const enc = new TextEncoder();

interface Partition {
  partition: number;
  leader?: string;
  local: boolean;
  role?: string;
}

/** A hash tag whose keys fall in partition `p`. */
function tagOf(p: number): string {
  for (let i = 0; ; i++) if (slots.partitionOfKey(enc.encode(`{t${i}}`)) === p) return `{t${i}}`;
}

async function partitions(n: BenchNode): Promise<Partition[] | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${n.http}/v1/partitions`, { signal: AbortSignal.timeout(1000) });
    return ((await res.json()) as { partitions: Partition[] }).partitions;
  } catch {
    return undefined;
  }
}

/** The node leading partition `p`, as a live node says. */
function leaderOf(c: BenchCluster, p: number, ms = 30_000): Promise<BenchNode> {
  return poll(`a leader of p${p}`, ms, async () => {
    for (const n of c.nodes) {
      if (n.child === undefined || n.child.exitCode !== null || n.child.signalCode !== null) continue;
      const v = (await partitions(n))?.[p];
      if (v?.local && v.role === 'leader') return n;
    }
    return undefined;
  });
}

/** `/proc/<pid>/io`: bytes the process had written to storage, and passed to write syscalls. */
function io(n: BenchNode): { storage: number; syscalls: number } {
  const text = readFileSync(`/proc/${n.child!.pid}/io`, 'utf8');
  const field = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { storage: field('write_bytes'), syscalls: field('wchar') };
}

interface Run {
  engine: string;
  connections: number;
  writesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  storageBytesPerWrite: number;
  syscallBytesPerWrite: number;
}

async function load(c: BenchCluster, engine: string, p: number, connections: number): Promise<Run> {
  const target = await leaderOf(c, p);
  const tag = tagOf(p);
  const clients = Array.from({ length: connections }, () => new Redis({ port: target.resp, host: '127.0.0.1' }));
  await Promise.all(clients.map((r) => r.ping()));
  const before = c.nodes.map(io);
  const lat: number[] = [];
  const end = Date.now() + SECONDS * 1000;
  let seq = 0;
  await Promise.all(
    clients.map(async (r, w) => {
      while (Date.now() < end) {
        const t = performance.now();
        await r.set(`${tag}:${w}:${seq++}`, VALUE);
        lat.push(performance.now() - t);
      }
    }),
  );
  const after = c.nodes.map(io);
  for (const r of clients) r.disconnect();
  const d = (k: 'storage' | 'syscalls') => after.reduce((s, a, i) => s + a[k] - before[i]![k], 0);
  return {
    engine,
    connections,
    writesPerSec: Math.round(lat.length / SECONDS),
    ...latencySummary(lat),
    storageBytesPerWrite: Math.round(d('storage') / lat.length),
    syscallBytesPerWrite: Math.round(d('syscalls') / lat.length),
  };
}

/** Nodes a failover SIGKILLed and started again. */
const restarted = new Set<BenchNode>();

/**
 * SIGKILLs partition `p`'s leader under one writer on another node; ms to the first acknowledged write after it.
 * The writer uses a node no earlier failover restarted where it can: a node started moments before may still count
 * the killed one alive (its membership not caught up), route the write to it and wait out the circuit breaker's
 * `openCircuitWaitMs`, which made this figure 4-6 s in about half the runs instead of the failover's 1.3-2.8 s.
 */
async function failover(c: BenchCluster, p: number): Promise<number> {
  const leader = await leaderOf(c, p);
  const others = c.nodes.filter((n) => n !== leader && n.child?.exitCode === null && n.child.signalCode === null);
  const via = others.find((n) => !restarted.has(n)) ?? others[0]!;
  const r = new Redis({ port: via.resp, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  r.on('error', () => {});
  const tag = tagOf(p);
  let i = 0;
  await r.set(`${tag}:f:${i++}`, VALUE);
  const killed = Date.now();
  await c.kill(leader);
  for (;;) {
    try {
      await r.set(`${tag}:f:${i++}`, VALUE);
      break;
    } catch {
      if (Date.now() - killed > 60_000) throw new Error(`p${p}: no write acknowledged within 60 s of the kill`);
    }
  }
  const ms = Date.now() - killed;
  r.disconnect();
  c.start(leader);
  restarted.add(leader);
  return ms;
}

async function main(): Promise<void> {
  const load1 = loadavg()[0]!;
  if (load1 >= 1.5 && !args.force) {
    console.error(
      `load average ${load1.toFixed(2)} >= 1.5: figures would mean nothing; rerun on an idle machine (or --force)`,
    );
    process.exit(2);
  }
  const root = mkdtempSync(join(tmpdir(), 'cohort-vp-bench-'));
  const c = await BenchCluster.create(root, 3, ['--partitions', '2', '--partition-engines', '1=vpaxos']);
  try {
    c.startAll();
    await leaderOf(c, 0, 60_000);
    await leaderOf(c, 1, 60_000);
    const runs: Run[] = [];
    for (const connections of [1, 64]) {
      runs.push(await load(c, 'raft (p0, 3 replicas)', 0, connections));
      runs.push(await load(c, 'vpaxos (p1, 2 replicas)', 1, connections));
    }
    console.table(runs);
    const failoverMs = { raft: await failover(c, 0), vpaxos: 0 };
    await leaderOf(c, 0, 60_000);
    await poll('every node back', 60_000, async () =>
      (await Promise.all(c.nodes.map(partitions))).every(Boolean) ? true : undefined,
    );
    failoverMs.vpaxos = await failover(c, 1);
    console.table([failoverMs]);
    if (args.out) writeFileSync(args.out, `${JSON.stringify({ seconds: SECONDS, runs, failoverMs }, null, 2)}\n`);
  } finally {
    await c.stopAll();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
