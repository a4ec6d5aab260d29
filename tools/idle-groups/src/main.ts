/**
 * Idle groups: what a Raft group costs while nobody writes to it. Three RaftHosts run in this
 * process over an in-process transport, each with one SQLite file holding every group (as a node
 * does), `--groups` groups each with a KV state machine; once every group has a leader, the
 * benchmark writes once to every group, lets things settle, then measures an idle stretch:
 * Raft messages, frames and bytes sent per second (and per idle group), the process's CPU, and
 * memory. Modes: `plain` (one full Raft message per heartbeat, no quiescence: the wire form before
 * coalescing), `coalesced` (heartbeats coalesced per peer), `quiesce` (coalesced, and idle groups
 * quiesce). Run: pnpm --filter @cohort/idle-groups bench -- --groups 1000 --mode quiesce
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type NodeId, systemClock, systemRandom } from '@cohort/core';
import { MemoryHub } from '@cohort/core/testing';
import { KvStateMachine, encodeCommand } from '@cohort/kv';
import { RaftHost } from '@cohort/raft';
import { SqliteNodeStore } from '@cohort/storage';

const { values: args } = parseArgs({
  // `pnpm bench -- --groups 10` passes the `--` on.
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    groups: { type: 'string', default: '1000' },
    mode: { type: 'string', default: 'quiesce' },
    seconds: { type: 'string', default: '10' },
    'tick-ms': { type: 'string', default: '100' },
  },
});
const GROUPS = Number(args.groups);
const MODE = args.mode as 'plain' | 'coalesced' | 'quiesce';
const SECONDS = Number(args.seconds);
const TICK_MS = Number(args['tick-ms']);
if (!['plain', 'coalesced', 'quiesce'].includes(MODE)) throw new Error('--mode is plain, coalesced or quiesce');
if (!(GROUPS > 0 && SECONDS > 0 && TICK_MS > 0)) throw new Error('--groups, --seconds and --tick-ms must be positive');

const IDS: NodeId[] = ['n1', 'n2', 'n3'];
const groups = Array.from({ length: GROUPS }, (_, i) => `p${i}`);
const dir = mkdtempSync(join(tmpdir(), 'cohort-idle-groups-'));
const hub = new MemoryHub();
const traffic = { frames: 0, bytes: 0 };
const hosts = new Map<NodeId, RaftHost>();
const stores: SqliteNodeStore[] = [];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
const mib = (b: number): string => (b / 1024 / 1024).toFixed(1);

const memBefore = process.memoryUsage();
for (const id of IDS) {
  const store = SqliteNodeStore.open(join(dir, `${id}.db`));
  stores.push(store);
  const transport = hub.transport(id);
  transport.onSend = (_to, frame) => {
    traffic.frames++;
    traffic.bytes += frame.byteLength;
  };
  const host = new RaftHost({
    id,
    store,
    transport,
    clock: systemClock,
    random: systemRandom,
    tickMs: TICK_MS,
    electionTicks: 10,
    electionTicksMax: 20,
    quiesce: MODE === 'quiesce',
    coalesceHeartbeats: MODE !== 'plain',
  });
  for (const g of groups) host.addGroup(g, new KvStateMachine(store, g), IDS);
  host.start();
  hosts.set(id, host);
}

const started = Date.now();
const leaderOf = (g: string): RaftHost | undefined => [...hosts.values()].find((h) => h.isLeader(g));
await until('a leader in every group', () => groups.every((g) => leaderOf(g) !== undefined));
const electedMs = Date.now() - started;
// One write per group, so every group holds data and has just been active.
const enc = new TextEncoder();
await Promise.all(
  groups.map((g) =>
    (leaderOf(g) as RaftHost).propose(
      g,
      encodeCommand({
        op: 'set',
        key: enc.encode('k'),
        value: enc.encode(g),
        condition: 'always',
        expiresAt: 0,
        returnOld: false,
        now: Date.now(),
      }),
    ),
  ),
);
if (MODE === 'quiesce') {
  await until('every group quiescent on every node', () =>
    [...hosts.values()].every((h) => h.quiescentGroups() === GROUPS),
  );
} else {
  await sleep(20 * TICK_MS);
}
const settledMs = Date.now() - started;
hub.sent.length = 0;

(globalThis as { gc?: () => void }).gc?.();
const mem = process.memoryUsage();
const sentBefore = [...hosts.values()].reduce((n, h) => n + h.stats().messagesSent, 0);
const t0 = { frames: traffic.frames, bytes: traffic.bytes };
const cpu0 = process.cpuUsage();
const w0 = performance.now();
// An idle stretch: nothing but what the hosts do on their own.
for (let s = 0; s < SECONDS; s++) {
  await sleep(1000);
  hub.sent.length = 0;
}
const wallS = (performance.now() - w0) / 1000;
const cpu = process.cpuUsage(cpu0);
const messages = [...hosts.values()].reduce((n, h) => n + h.stats().messagesSent, 0) - sentBefore;
const frames = traffic.frames - t0.frames;
const bytes = traffic.bytes - t0.bytes;
const cpuPct = ((cpu.user + cpu.system) / 1000 / 1000 / wallS) * 100;
const quiescent = [...hosts.values()].map((h) => h.quiescentGroups());

const per = (x: number): string => (x / wallS / GROUPS).toFixed(3);
console.log(
  `idle groups: ${GROUPS} groups x 3 replicas, 3 RaftHosts in one process, SQLite, tick ${TICK_MS} ms, mode ${MODE}`,
);
console.log(
  `  all leaders elected after ${(electedMs / 1000).toFixed(1)} s; settled after ${(settledMs / 1000).toFixed(1)} s`,
);
console.log(`  quiescent groups per node: ${quiescent.join(', ')}`);
console.log(`  idle ${wallS.toFixed(1)} s, whole cluster (3 nodes):`);
console.log(`    raft messages/s   ${(messages / wallS).toFixed(0).padStart(9)}   per group ${per(messages)}`);
console.log(`    frames/s          ${(frames / wallS).toFixed(0).padStart(9)}   per group ${per(frames)}`);
console.log(`    bytes/s           ${(bytes / wallS).toFixed(0).padStart(9)}   per group ${per(bytes)}`);
console.log(`    CPU               ${cpuPct.toFixed(1).padStart(8)}%   of one core for the 3 nodes`);
console.log(
  `  memory after settling (gc'd): RSS ${mib(mem.rss)} MiB (+${mib(mem.rss - memBefore.rss)} for the 3 nodes), heap used ${mib(mem.heapUsed)} MiB (+${mib(mem.heapUsed - memBefore.heapUsed)}), external ${mib(mem.external)} MiB`,
);
for (const h of hosts.values()) h.stop();
for (const s of stores) s.close();
rmSync(dir, { recursive: true, force: true });
