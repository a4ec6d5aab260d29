// Throughput and latency of a local 3-node cluster of real `cohort` processes:
// SET through the leader, SET through a follower (forwarded), GET (ReadIndex)
// through the leader. Usage: node bench/throughput.mjs [seconds=5] [clients=16]
// (after `pnpm run build`).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const seconds = Number(process.argv[2] ?? 5);
const clients = Number(process.argv[3] ?? 16);
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'cohort-bench-'));

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

const nodes = [];
for (let i = 1; i <= 3; i++)
  nodes.push({ id: `n${i}`, peer: await freePort(), resp: await freePort(), http: await freePort() });
const peers = nodes.map((n) => `${n.id}=127.0.0.1:${n.peer}`).join(',');
const children = nodes.map((n) =>
  spawn(
    process.execPath,
    [
      cli,
      'start',
      '--id',
      n.id,
      '--data-dir',
      join(root, n.id),
      '--peers',
      peers,
      '--resp',
      `127.0.0.1:${n.resp}`,
      '--http',
      `127.0.0.1:${n.http}`,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  ),
);

async function leader() {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const n of nodes) {
      try {
        const s = await (await fetch(`http://127.0.0.1:${n.http}/v1/status`)).json();
        if (s.leader) return nodes.find((m) => m.id === s.leader);
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no leader in 30 s');
}

async function run(name, port, op) {
  const conns = Array.from({ length: clients }, () => new Redis({ port, host: '127.0.0.1' }));
  await Promise.all(conns.map((c) => c.ping()));
  const latencies = [];
  const end = Date.now() + seconds * 1000;
  let ops = 0;
  await Promise.all(
    conns.map(async (c, ci) => {
      for (let i = 0; Date.now() < end; i++) {
        const t = process.hrtime.bigint();
        await op(c, `k${ci}-${i % 1000}`);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
        ops++;
      }
    }),
  );
  for (const c of conns) c.disconnect();
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
  console.log(
    `${name.padEnd(28)} ${String(Math.round(ops / seconds)).padStart(7)} ops/s   p50 ${q(0.5)} ms   p99 ${q(0.99)} ms`,
  );
}

try {
  const l = await leader();
  const f = nodes.find((n) => n !== l);
  console.log(`3 nodes, ${clients} clients, ${seconds} s per run, leader ${l.id}`);
  await run('SET via leader', l.resp, (c, k) => c.set(k, 'v'.repeat(100)));
  await run('SET via follower (fwd)', f.resp, (c, k) => c.set(k, 'v'.repeat(100)));
  await run('GET via leader (ReadIndex)', l.resp, (c, k) => c.get(k));
  await run('GET via follower (fwd)', f.resp, (c, k) => c.get(k));
  // Group commit: entries per durable write, and the time one write takes, on the leader.
  const m = await (await fetch(`http://127.0.0.1:${l.http}/metrics`)).text();
  const v = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(m)?.[1] ?? Number.NaN);
  const writes = v('cohort_raft_store_writes_total');
  console.log(
    `leader: ${writes} store writes, ${(v('cohort_raft_entries_persisted_total') / writes).toFixed(1)} entries per write, ` +
      `${((v('cohort_raft_store_write_seconds_total') * 1000) / writes).toFixed(2)} ms per write`,
  );
} finally {
  for (const c of children) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
}
