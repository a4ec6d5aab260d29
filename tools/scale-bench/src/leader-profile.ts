// Profiles the leader of a fresh 3-node cluster under HTTP puts (or linearizable
// gets with `--workload get`): every node runs with `node --cpu-prof`, requests go
// to the leader at `--connections`
// keep-alive connections for `--seconds`, then the nodes stop (SIGTERM, so
// they write their profiles) and the leader's top self-time frames during the
// load (startup left out) are printed. With `--heap`, the leader's heap is sampled
// instead (V8's sampling heap profiler, through the inspector of a node run with
// `--inspect`): where what the load allocated and outlived the young generation
// was allocated. Not a test: `pnpm turbo run build`, then
// `pnpm --filter @cohort/scale-bench profile-leader -- --seconds 10`.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { BenchCluster, type BenchNode } from './cluster.ts';
import { type HeapProfile, formatHeapTop } from './heap-top.ts';
import { InspectorClient, inspectorUrl } from './inspector-client.ts';
import { round } from './load.ts';
import { type CpuProfile, formatTop } from './profile-top.ts';

const USAGE = `usage: profile-leader [--workload put|get] [--connections N] [--seconds S] [--value-bytes B] [--top N] [--out DIR] [--heap [--all-allocations]]
  --workload W     put: PUT /v1/kv/k<n>; get: linearizable GET of the keys a short put run wrote first;
                   resp-get: the same over RESP, one ioredis connection per --connections; resp-set: SET of a
                   random one of --keyspace keys over RESP, as the scale benchmark's puts (default put)
  --cohort-flags F extra \`cohort start\` flags of every node, space-separated (default none)
  --node-flags F   extra Node flags of every node, space-separated, e.g. --trace-gc (default none)
  --keyspace K     resp-set: how many keys the SETs pick from (default 1000000)
  --connections N  HTTP keep-alive connections to the leader (default 64)
  --pipeline P     RESP workloads: P commands per pipeline on each connection, as redis-benchmark -P (default 1)
  --seconds S      length of the load (default 10)
  --value-bytes B  value size (default 100)
  --top N          frames to print (default 15)
  --out DIR        keep the profiles in DIR (default: a temporary directory, deleted)
  --heap           sample the leader's heap during the load instead of its CPU, and print where what outlived
                   V8's young generation was allocated (freed by a full collection, or still alive at the end),
                   in bytes a request: what makes the old generation grow and its full collections come
  --all-allocations with --heap: count what died young too (every allocation)`;

const { values: o } = parseArgs({
  options: {
    workload: { type: 'string', default: 'put' },
    connections: { type: 'string', default: '64' },
    pipeline: { type: 'string', default: '1' },
    keyspace: { type: 'string', default: '1000000' },
    'cohort-flags': { type: 'string', default: '' },
    'node-flags': { type: 'string', default: '' },
    seconds: { type: 'string', default: '10' },
    'value-bytes': { type: 'string', default: '100' },
    top: { type: 'string', default: '15' },
    out: { type: 'string' },
    heap: { type: 'boolean', default: false },
    'all-allocations': { type: 'boolean', default: false },
    help: { type: 'boolean' },
  },
  args: process.argv.slice(2).filter((a) => a !== '--'),
});
if (o.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const num = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) {
    process.stderr.write(`profile-leader: --${name} must be a whole number above 0, got '${v}'\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
};
const CONNECTIONS = num('connections', o.connections);
const PIPELINE = num('pipeline', o.pipeline);
const KEYSPACE = num('keyspace', o.keyspace);
const SECONDS = num('seconds', o.seconds);
const VALUE = 'x'.repeat(num('value-bytes', o['value-bytes']));
const TOP = num('top', o.top);
const WORKLOAD = o.workload;
if (WORKLOAD !== 'put' && WORKLOAD !== 'get' && WORKLOAD !== 'resp-get' && WORKLOAD !== 'resp-set') {
  process.stderr.write(
    `profile-leader: --workload must be put, get, resp-get or resp-set, got '${WORKLOAD}'\n${USAGE}\n`,
  );
  process.exit(2);
}

const root = mkdtempSync(join(tmpdir(), 'cohort-profile-'));
const profiles = o.out ?? join(root, 'profiles');
const HEAP = o.heap;
const ALL_ALLOCATIONS = o['all-allocations'];
if (ALL_ALLOCATIONS && !HEAP) {
  process.stderr.write(`profile-leader: --all-allocations goes with --heap\n${USAGE}\n`);
  process.exit(2);
}
// Children inherit the environment: each node writes CPU-<pid>-....cpuprofile on exit.
if (!HEAP) process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${profiles}`.trim();
const cluster = await BenchCluster.create(
  root,
  3,
  ['--log-level', 'warn', ...o['cohort-flags'].split(' ').filter((f) => f !== '')],
  // Each node's inspector on a port of its own choosing, printed on its standard error.
  [...o['node-flags'].split(' ').filter((f) => f !== ''), ...(HEAP ? ['--inspect=127.0.0.1:0'] : [])],
);

/**
 * Connects to `node`'s inspector: the last address it printed (`cohort start` runs itself again with large pages,
 * and the node's inspector is the second one).
 */
async function inspector(node: BenchNode): Promise<InspectorClient> {
  const url = node.events
    .map((e) => inspectorUrl(e.msg))
    .filter((u) => u !== undefined)
    .at(-1);
  if (url === undefined) throw new Error(`no inspector address in the output of ${node.id}`);
  return InspectorClient.connect(url);
}

function send(agent: Agent, port: number, key: string, method: 'PUT' | 'GET'): Promise<number> {
  const body = method === 'PUT' ? JSON.stringify({ value: VALUE }) : '';
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method,
        path: `/v1/kv/${key}`,
        headers:
          method === 'PUT' ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {},
        timeout: 5000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(method === 'PUT' ? body : undefined);
  });
}

/** The leader's `cohort_raft_*` and `cohort_merged_*` counters (summed over groups), from its /metrics. */
async function raftCounters(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(cohort_(?:raft|merged)_[a-z_]+_total)(?:\{[^}]*\})? ([0-9.e+]+)$/.exec(line);
    if (m) out.set(m[1] as string, (out.get(m[1] as string) ?? 0) + Number(m[2]));
  }
  return out;
}

try {
  cluster.startAll();
  const leader = await cluster.leader(60_000);
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  if (WORKLOAD === 'get' || WORKLOAD === 'resp-get') {
    // The keys the gets read, written first (outside the measured window).
    let next = 0;
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        while (next < 10_000) await send(agent, leader.http, `k${next++}`, 'PUT');
      }),
    );
  }
  const sampler = HEAP ? await inspector(leader) : undefined;
  await sampler?.call('HeapProfiler.startSampling', {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: ALL_ALLOCATIONS,
  });
  const before = await raftCounters(leader.http);
  const latencies: number[] = [];
  let errors = 0;
  // The profile's clock is the monotonic one of process.hrtime: the summary covers the load only, not startup.
  const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
  const fromUs = nowUs();
  const until = performance.now() + SECONDS * 1000;
  let seq = 0;
  const clients =
    WORKLOAD === 'resp-get' || WORKLOAD === 'resp-set'
      ? Array.from({ length: CONNECTIONS }, () => new Redis({ port: leader.resp, host: '127.0.0.1' }))
      : [];
  /** One request of the workload; its HTTP-like status (0: failed). */
  const once = (client: Redis | undefined, key: string): Promise<number> => {
    switch (WORKLOAD) {
      case 'resp-set':
        return (client as Redis).set(`key:${Math.floor(Math.random() * KEYSPACE)}`, VALUE).then(
          () => 200,
          () => 0,
        );
      case 'resp-get':
        return (client as Redis).get(key).then(
          (v) => (v === null ? 404 : 200),
          () => 0,
        );
      default:
        return send(agent, leader.http, key, WORKLOAD === 'get' ? 'GET' : 'PUT').catch(() => 0);
    }
  };
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, c) => {
      const client = clients[c];
      while (performance.now() < until) {
        const t0 = performance.now();
        if (client !== undefined && PIPELINE > 1) {
          const batch = client.pipeline();
          for (let i = 0; i < PIPELINE; i++) {
            if (WORKLOAD === 'resp-set') batch.set(`key:${Math.floor(Math.random() * KEYSPACE)}`, VALUE);
            else batch.get(`k${seq++ % 10_000}`);
          }
          const results = (await batch.exec().catch(() => null)) ?? [];
          const ms = performance.now() - t0;
          for (const [err] of results) {
            if (err) errors++;
            else latencies.push(ms);
          }
          errors += PIPELINE - results.length;
          continue;
        }
        const key = `k${seq++ % 10_000}`;
        const status = await once(client, key);
        if (status === 200) latencies.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  for (const r of clients) r.disconnect();
  const toUs = nowUs();
  const heap = (await sampler?.call<{ profile: HeapProfile }>('HeapProfiler.stopSampling'))?.profile;
  sampler?.close();
  const after = await raftCounters(leader.http);
  agent.destroy();
  const sorted = Float64Array.from(latencies).sort();
  const q = (x: number): number => round(sorted[Math.min(sorted.length - 1, Math.floor(x * sorted.length))] ?? 0);
  process.stderr.write(
    `leader ${leader.id}: ${latencies.length} ${WORKLOAD}s in ${SECONDS} s = ${Math.round(latencies.length / SECONDS)}/s, p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, ${errors} errors\n`,
  );
  const per = (name: string): string => {
    const n = (after.get(name) ?? 0) - (before.get(name) ?? 0);
    return `${n} (${round(latencies.length / Math.max(1, n))} ${WORKLOAD}s each)`;
  };
  process.stderr.write(
    `leader's Raft work during the load: ${per('cohort_raft_ready_rounds_total')} Ready rounds, ${per('cohort_raft_read_index_rounds_total')} ReadIndex rounds (${(after.get('cohort_raft_read_index_hedges_total') ?? 0) - (before.get('cohort_raft_read_index_hedges_total') ?? 0)} hedged), ${per('cohort_raft_store_writes_total')} store writes, ${per('cohort_raft_messages_sent_total')} messages sent; ${per('cohort_merged_conditional_entries_total')} entries of concurrent puts merged, ${per('cohort_merged_connection_entries_total')} of several RESP connections' writes\n`,
  );
  if (heap !== undefined) {
    process.stdout.write(
      `the leader's heap, ${ALL_ALLOCATIONS ? 'every allocation' : 'what outlived the young generation'} (V8's sampling heap profiler, every 4 KiB):\n${formatHeapTop(heap, latencies.length, TOP)}\n`,
    );
  } else {
    const pid = leader.child?.pid;
    await cluster.stopAll();
    // The leader's main thread (thread 0) wrote two profiles when `cohort start` ran itself again with large pages
    // (same PID: the launcher's, a fraction of a second long, then the node's): the node's is the later one.
    const file = readdirSync(profiles)
      .filter((f) => f.startsWith('CPU.') && f.includes(`.${pid}.0.`))
      .sort()
      .at(-1);
    if (!file) throw new Error(`no profile of the leader (pid ${pid}) in ${profiles}`);
    process.stdout.write(
      `${join(profiles, file)}\n${formatTop(JSON.parse(readFileSync(join(profiles, file), 'utf8')) as CpuProfile, TOP, { fromUs, toUs })}\n`,
    );
  }
} finally {
  await cluster.stopAll();
  rmSync(root, { recursive: true, force: true });
}
