// `pnpm --filter @cohort/bench txn`: latency and throughput of transactions across partitions on a
// 3-node cluster of real processes: MSET of 2, 4 and 16 keys spanning 2, 4 and 16 partitions against the
// one-partition path (the same keys under one hash tag), then the abort and retry rates under contention.
// Not a test; the figures mean something only on a quiet machine. See README.md.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchCluster, poll } from '@cohort/scale-bench/cluster';
import { Redis } from 'ioredis';
import { latencySummary, round } from './stats.ts';

const SLOTS = 16384;

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '8' },
    partitions: { type: 'string', default: '16' },
    help: { type: 'boolean', default: false },
  },
  // pnpm passes the `--` of `pnpm --filter @cohort/bench txn -- --seconds 5` through.
  args: process.argv.slice(2).filter((a) => a !== '--'),
});
if (flags.help) {
  console.log(`usage: node --no-warnings src/transactions.ts [--seconds 5] [--clients 8] [--partitions 16]

Starts 3 cohort nodes with --partitions partitions (16 for every case; fewer skip the cases spanning
more partitions than there are), then for each case runs --clients
connections doing MSET back to back for --seconds: keys spread over S partitions (a transaction) and the
same number of keys under one hash tag (one partition, one round), each client on keys of its own; then
every client on the same 4 keys over 4 partitions (MSET: TRYAGAIN answers; WATCH/GET/MULTI/SET/EXEC:
nil EXECs, optimistic aborts), with the share of the coordinators' attempts aborted on a conflict and
retried (cohort_txn_steps_total). Prints a table and the machine's load.`);
  process.exit(0);
}
const seconds = Number(flags.seconds);
const clients = Number(flags.clients);
const partitions = Number(flags.partitions);
if (![seconds, clients, partitions].every((n) => Number.isFinite(n) && n > 0) || partitions < 2) {
  console.error('--seconds and --clients must be above 0, --partitions at least 2');
  process.exit(2);
}

/** One measured case. */
interface Row {
  name: string;
  ops: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers that were not applied: TRYAGAIN, nil EXEC. */
  aborted: number;
  errors: number;
  /** Coordinator attempts aborted on a conflict and retried, over all attempts (from the nodes' metrics). */
  retried?: string;
}

/** The sum over the nodes of `cohort_txn_steps_total{step}` per step. */
async function txnSteps(nodes: { http: number }[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const n of nodes) {
    const text = await fetch(`http://127.0.0.1:${n.http}/metrics`).then((r) => r.text());
    for (const m of text.matchAll(/^cohort_txn_steps_total\{step="([^"]+)"\} (\d+)/gm)) {
      out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
    }
  }
  return out;
}

/** `run`, with the share of coordinator attempts retried meanwhile. */
async function withRetries(nodes: { http: number }[], run: () => Promise<Row>): Promise<Row> {
  const before = await txnSteps(nodes);
  const row = await run();
  const after = await txnSteps(nodes);
  const delta = (step: string) => (after.get(step) ?? 0) - (before.get(step) ?? 0);
  const attempts = delta('txnCommit') + delta('txnAbort');
  return { ...row, retried: attempts > 0 ? `${round((100 * delta('txnAbort')) / attempts, 1)}%` : '-' };
}

/** Runs `op` back to back on each client for `seconds`; `op` answers whether it applied. */
async function measure(
  name: string,
  conns: Redis[],
  op: (r: Redis, client: number, i: number) => Promise<boolean>,
): Promise<Row> {
  const latencies: number[] = [];
  let aborted = 0;
  let errors = 0;
  let firstError = '';
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    conns.map(async (r, client) => {
      for (let i = 0; performance.now() < end; i++) {
        const t = performance.now();
        try {
          if (await op(r, client, i)) latencies.push(performance.now() - t);
          else aborted++;
        } catch (err) {
          if (/TRYAGAIN/.test(String(err))) aborted++;
          else {
            errors++;
            firstError ||= String(err);
          }
        }
      }
    }),
  );
  if (firstError) console.error(`${name}: ${errors} errors, the first: ${firstError}`);
  const { p50Ms, p99Ms } = latencySummary(latencies);
  return {
    name,
    ops: latencies.length,
    opsPerSec: round(latencies.length / seconds, 1),
    p50Ms,
    p99Ms,
    aborted,
    errors,
  };
}

/** Keys `${prefix}<n>` by partition, found with CLUSTER KEYSLOT. */
async function keysByPartition(r: Redis, prefix: string, perPartition: number): Promise<string[][]> {
  const out: string[][] = Array.from({ length: partitions }, () => []);
  for (let base = 0; out.some((l) => l.length < perPartition); base += 512) {
    const names = Array.from({ length: 512 }, (_, i) => `${prefix}${base + i}`);
    const p = r.pipeline();
    for (const n of names) p.call('CLUSTER', 'KEYSLOT', n);
    const slots = ((await p.exec()) ?? []).map(([, s]) => Number(s));
    names.forEach((n, i) => {
      const list = out[Math.floor((slots[i]! * partitions) / SLOTS)]!;
      if (list.length < perPartition) list.push(n);
    });
  }
  return out;
}

/** `n` keys over the first `spread` partitions, round-robin, for client `c`. */
function spreadKeys(byPartition: string[][], n: number, spread: number, c: number): string[] {
  return Array.from({ length: n }, (_, i) => byPartition[i % spread]![c * n + Math.floor(i / spread)]!);
}

const root = mkdtempSync(join(tmpdir(), 'cohort-txn-bench-'));
const cluster = await BenchCluster.create(root, 3, ['--partitions', String(partitions)]);
const conns: Redis[] = [];
try {
  cluster.startAll();
  await poll('every partition led', 60_000, async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${cluster.nodes[0]!.http}/v1/partitions`);
      const ps = ((await res.json()) as { partitions: { leader: string }[] }).partitions;
      return ps.every((p) => p.leader !== '') ? true : undefined;
    } catch {
      return undefined;
    }
  });
  // Clients spread over the nodes, as plain connections (the node coordinates or forwards).
  for (let c = 0; c < clients; c++) {
    const node = cluster.nodes[c % cluster.nodes.length]!;
    conns.push(new Redis({ port: node.resp, host: '127.0.0.1', maxRetriesPerRequest: 0 }));
  }
  const byPartition = await keysByPartition(conns[0]!, 'bench:', 16 * clients);
  const value = 'x'.repeat(100);
  const rows: Row[] = [];
  const cases: [number, number][] = [
    [2, 2],
    [4, 2],
    [4, 4],
    [16, 2],
    [16, 4],
    [16, 16],
  ];
  const runnable = cases.filter(([, spread]) => spread <= partitions);
  for (const [n, spread] of runnable) {
    // The one-partition path once per key count, before its first spread.
    if (runnable.find(([m]) => m === n)?.[1] === spread) {
      rows.push(
        await measure(`MSET ${n} keys, 1 partition (hash tag)`, conns, (r, c) =>
          r.mset(...Array.from({ length: n }, (_, i) => [`{tag:${c}}:${i}`, value]).flat()).then(() => true),
        ),
      );
    }
    rows.push(
      await measure(`MSET ${n} keys over ${spread} partitions`, conns, (r, c) =>
        r.mset(...spreadKeys(byPartition, n, spread, c).flatMap((k) => [k, value])).then(() => true),
      ),
    );
  }
  // Contention: every client on the same 4 keys of 4 partitions.
  const hot = spreadKeys(byPartition, 4, 4, 0);
  rows.push(
    await withRetries(cluster.nodes, () =>
      measure('contended MSET of the same 4 keys over 4 partitions', conns, (r) =>
        r.mset(...hot.flatMap((k) => [k, value])).then(() => true),
      ),
    ),
  );
  await conns[0]!.mset(...hot.flatMap((k) => [k, '0']));
  rows.push(
    await withRetries(cluster.nodes, () =>
      measure('contended WATCH/EXEC increments of the same 4 keys', conns, async (r) => {
        await r.watch(...hot);
        const vs = await r.mget(...hot);
        const m = r.multi();
        hot.forEach((k, i) => m.set(k, String(Number(vs[i]) + 1)));
        return (await m.exec()) !== null;
      }),
    ),
  );
  const rate = (x: Row) => (x.ops + x.aborted > 0 ? `${round((100 * x.aborted) / (x.ops + x.aborted), 1)}%` : '-');
  console.log(
    `\n${clients} clients, ${seconds} s per case, ${partitions} partitions, 3 nodes on ${cpus().length} cores`,
  );
  console.table(
    rows.map((x) => ({
      case: x.name,
      'ops/s': x.opsPerSec,
      'p50 ms': x.p50Ms,
      'p99 ms': x.p99Ms,
      aborted: x.aborted,
      'abort rate': rate(x),
      'attempts retried': x.retried ?? '',
      errors: x.errors,
    })),
  );
  console.log(
    `load average after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
} finally {
  for (const r of conns) r.disconnect();
  await cluster.stopAll();
  rmSync(root, { recursive: true, force: true });
}
