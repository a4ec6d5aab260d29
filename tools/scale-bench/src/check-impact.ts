// What a consistency check costs the writes around it: a fresh 3-node
// cluster loaded with `--keys` keys, puts to the leader over 64 HTTP
// keep-alive connections for `--seconds`, and `POST /v1/admin/consistency-check`
// to the leader `--check-at` seconds in; prints the puts completed each second
// and the check's answer. Run `pnpm --filter @cohort/scale-bench check-impact`.
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { BenchCluster } from './cluster.ts';
import { keyOf, loadKeys } from './load.ts';

const { values: o } = parseArgs({
  // pnpm passes the `--` before the flags on.
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    keys: { type: 'string', default: '1000000' },
    seconds: { type: 'string', default: '45' },
    'check-at': { type: 'string', default: '15' },
    connections: { type: 'string', default: '64' },
  },
});
const KEYS = Number(o.keys);
const SECONDS = Number(o.seconds);
const CHECK_AT = Number(o['check-at']);
const CONNECTIONS = Number(o.connections);
for (const [flag, v] of [
  ['--keys', KEYS],
  ['--seconds', SECONDS],
  ['--check-at', CHECK_AT],
  ['--connections', CONNECTIONS],
] as const) {
  if (!Number.isFinite(v) || v <= 0) {
    process.stderr.write(`check-impact: ${flag} must be a positive number\n`);
    process.exit(2);
  }
}

const VALUE = JSON.stringify({ value: 'v'.repeat(100) });
const clock = (): string => new Date().toISOString().slice(11, 19);

function put(agent: Agent, port: number, key: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'PUT',
        path: `/v1/kv/${key}`,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(VALUE) },
        timeout: 30_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve());
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(VALUE);
  });
}

const root = mkdtempSync(join(tmpdir(), 'cohort-check-impact-'));
const cluster = await BenchCluster.create(root, 3, ['--log-level', 'warn']);
try {
  cluster.startAll();
  const leader = await cluster.leader(60_000);
  const clients = Array.from({ length: 4 }, () => new Redis({ host: '127.0.0.1', port: leader.resp }));
  const rate = await loadKeys(clients, KEYS, 100);
  for (const c of clients) c.disconnect();
  console.log(`${clock()} ${KEYS} keys loaded at ${Math.round(rate)}/s; puts over ${CONNECTIONS} connections`);
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const end = Date.now() + SECONDS * 1000;
  let done = 0;
  let shown = 0;
  const everySecond = setInterval(() => {
    console.log(`${clock()} puts/s ${done - shown}`);
    shown = done;
  }, 1000);
  const check = new Promise<void>((resolve) =>
    setTimeout(async () => {
      console.log(`${clock()} consistency check requested`);
      const started = Date.now();
      try {
        const res = await fetch(`http://127.0.0.1:${leader.http}/v1/admin/consistency-check`, { method: 'POST' });
        const body = (await res.json()) as { verdict?: string; replicas?: { node: string; error?: string }[] };
        const errors = (body.replicas ?? []).filter((r) => r.error).map((r) => `${r.node}: ${r.error}`);
        console.log(
          `${clock()} check answered in ${((Date.now() - started) / 1000).toFixed(1)} s: ${body.verdict ?? `HTTP ${res.status}`}` +
            (errors.length > 0 ? ` (${errors.join('; ')})` : ''),
        );
      } catch (err) {
        console.log(`${clock()} check failed: ${(err as Error).message}`);
      }
      resolve();
    }, CHECK_AT * 1000),
  );
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < end) {
        await put(agent, leader.http, keyOf(Math.floor(Math.random() * KEYS)));
        done++;
      }
    }),
  );
  clearInterval(everySecond);
  await check;
  agent.destroy();
} finally {
  await cluster.stopAll();
  rmSync(root, { recursive: true, force: true });
}
