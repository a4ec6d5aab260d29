// The KV state machine on SQLite: apply throughput (with and without
// exactly-once sessions), point reads, a snapshot streamed and installed
// while the source keeps applying, the digest, and reopening to the applied
// index. Run: `pnpm run bench` (COHORT_BENCH_KEYS sets the dataset size;
// COHORT_BENCH_WATCH=1 applies with a watch history listening, as a node does).
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '@cohort/core';
import { SqliteNodeStore } from '@cohort/storage';
import { KvStateMachine, WatchHub, encodeCommand } from '../dist/index.js';

const KEYS = Number(process.env.COHORT_BENCH_KEYS ?? 200_000);
const BATCH = 64;
const CHUNK = 1 << 20;
const conf = { voters: ['n1'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
const enc = new TextEncoder();
const value = new Uint8Array(100).fill(97);
const mb = (n: number): string => `${(n / 1e6).toFixed(0)} MB`;

async function run(sessions: boolean): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-kv-bench-'));
  const file = join(dir, 'node.db');
  const store = SqliteNodeStore.open(file);
  const sm = new KvStateMachine(store, 'p0');
  if (process.env.COHORT_BENCH_WATCH === '1') sm.setEventListener(new WatchHub({ applied: 0 }));
  let index = 0;
  const next = (): Entry => {
    index++;
    const key = enc.encode(`key:${String(index).padStart(8, '0')}`);
    const base = {
      op: 'set',
      key,
      value,
      condition: 'always',
      expiresAt: 0,
      returnOld: false,
      now: 1000 + index,
    } as const;
    const cmd = sessions
      ? { ...base, session: { clientId: `c${index % 64}`, seq: index, lowWater: Math.max(0, index - 64) } }
      : base;
    return { index, term: 1, type: 'normal', data: encodeCommand(cmd) };
  };
  const applyN = (n: number): number => {
    const t = performance.now();
    const end = index + n;
    while (index < end) {
      const batch: Entry[] = [];
      for (let i = 0; i < BATCH && index < end; i++) batch.push(next());
      sm.applyBatch(batch, conf);
    }
    return (n / (performance.now() - t)) * 1000;
  };
  const label = sessions ? 'with sessions' : 'without sessions';
  const load = applyN(KEYS);
  const steady = applyN(20_000);
  console.log(
    `${label}: load ${KEYS} keys ${load.toFixed(0)} entries/s; at ${KEYS} keys ${steady.toFixed(0)} entries/s`,
  );
  if (sessions) {
    let t = performance.now();
    for (let i = 0; i < 20_000; i++) sm.get(enc.encode(`key:${String(1 + ((i * 7919) % KEYS)).padStart(8, '0')}`), 0);
    console.log(`point reads: ${((20_000 / (performance.now() - t)) * 1000).toFixed(0)}/s`);
    const rssBefore = process.memoryUsage().rss;
    const reader = await sm.openSnapshot();
    const peerStore = SqliteNodeStore.open(join(dir, 'peer.db'));
    const peer = new KvStateMachine(peerStore, 'p0');
    const writer = peer.receiveSnapshot(reader.meta);
    t = performance.now();
    let seq = 0;
    let bytes = 0;
    let peak = rssBefore;
    for (let c = await reader.next(CHUNK); c; c = await reader.next(CHUNK)) {
      writer.write(seq++, c);
      bytes += c.length;
      applyN(BATCH);
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    reader.close();
    writer.commit();
    console.log(
      `snapshot at ${reader.meta.index}: ${seq} chunks, ${mb(bytes)}, streamed and installed in ${(performance.now() - t).toFixed(0)} ms while the source applied ${seq * BATCH} entries; RSS ${mb(rssBefore)} before, ${mb(peak)} peak`,
    );
    t = performance.now();
    peer.digest();
    console.log(`digest of ${peer.size} rows: ${(performance.now() - t).toFixed(0)} ms`);
    peerStore.close();
    store.close();
    t = performance.now();
    const reopened = SqliteNodeStore.open(file);
    const again = new KvStateMachine(reopened, 'p0');
    console.log(
      `reopen to applied index ${again.appliedIndex}: ${(performance.now() - t).toFixed(0)} ms; file ${mb(statSync(file).size)}; heap ${mb(process.memoryUsage().heapUsed)}`,
    );
    reopened.close();
  } else {
    store.close();
  }
  rmSync(dir, { recursive: true, force: true });
}

await run(false);
await run(true);
