// Durable append throughput: Cohort's SqliteNodeStore next to one plain
// better-sqlite3 transaction of the same rows (WAL, synchronous=FULL), and a
// worker-thread variant of the Cohort write. Run: `pnpm run bench`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Entry } from '@cohort/core';
import Database from 'better-sqlite3';
import { SqliteNodeStore } from '../dist/index.js';

const SIZES = [100, 4096];
const BATCHES = [1, 16, 256];
const ROUNDS = Number(process.env.COHORT_BENCH_ROUNDS ?? 3);
/** Target rows per measurement, so small batches still do enough fsyncs to time. */
const writesFor = (batch: number): number => (batch === 1 ? 200 : batch === 16 ? 120 : 40);

function makeBatch(start: number, batch: number, size: number): Entry[] {
  return Array.from({ length: batch }, (_, k) => ({
    index: start + k,
    term: 1,
    type: 'normal' as const,
    data: new Uint8Array(size).fill((start + k) & 0xff),
  }));
}

function cohortRun(dir: string, batch: number, size: number, writes: number): number {
  const store = SqliteNodeStore.open(join(dir, `cohort-${batch}-${size}.db`));
  const batches = Array.from({ length: writes }, (_, w) => makeBatch(1 + w * batch, batch, size));
  const t0 = performance.now();
  batches.forEach((entries, w) => {
    store.write([{ group: 'p1', entries, hardState: { term: 1, vote: 'n1', commit: w * batch } }]);
  });
  const ms = performance.now() - t0;
  store.close();
  return ms;
}

function rawRun(dir: string, batch: number, size: number, writes: number): number {
  const db = new Database(join(dir, `raw-${batch}-${size}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(
    'CREATE TABLE entries (gid INTEGER, idx INTEGER, term INTEGER, type INTEGER, data BLOB, crc INTEGER, PRIMARY KEY (gid, idx)) WITHOUT ROWID',
  );
  const ins = db.prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)');
  const tx = db.transaction((entries: Entry[]) => {
    for (const e of entries) ins.run(1, e.index, e.term, 0, e.data, 0);
  });
  const batches = Array.from({ length: writes }, (_, w) => makeBatch(1 + w * batch, batch, size));
  const t0 = performance.now();
  for (const entries of batches) tx(entries);
  const ms = performance.now() - t0;
  db.close();
  return ms;
}

/** The same Cohort writes, each posted to a worker thread that owns the store and awaited before the next. */
async function workerRun(dir: string, batch: number, size: number, writes: number): Promise<number> {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     import(workerData.lib).then(({ SqliteNodeStore }) => {
       const store = SqliteNodeStore.open(workerData.file);
       parentPort.on('message', (m) => {
         if (m === 'close') { store.close(); parentPort.postMessage('closed'); return; }
         store.write(m);
         parentPort.postMessage('ok');
       });
       parentPort.postMessage('ready');
     });`,
    {
      eval: true,
      workerData: {
        lib: new URL('../dist/index.js', import.meta.url).href,
        file: join(dir, `worker-${batch}-${size}.db`),
      },
    },
  );
  const next = (): Promise<unknown> => new Promise((resolve) => worker.once('message', resolve));
  await next();
  const batches = Array.from({ length: writes }, (_, w) => makeBatch(1 + w * batch, batch, size));
  const t0 = performance.now();
  for (let w = 0; w < batches.length; w++) {
    const reply = next();
    worker.postMessage([{ group: 'p1', entries: batches[w], hardState: { term: 1, vote: 'n1', commit: w * batch } }]);
    await reply;
  }
  const ms = performance.now() - t0;
  const closed = next();
  worker.postMessage('close');
  await closed;
  await worker.terminate();
  return ms;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmt = (n: number, digits = 0): string =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-'));
  try {
    const rows: string[] = [];
    for (const size of SIZES) {
      for (const batch of BATCHES) {
        const writes = writesFor(batch);
        const cohort: number[] = [];
        const raw: number[] = [];
        const worker: number[] = [];
        // Interleaved rounds, so background load hits both sides alike.
        for (let r = 0; r < ROUNDS; r++) {
          const rd = mkdtempSync(join(dir, 'round-'));
          raw.push(rawRun(rd, batch, size, writes));
          cohort.push(cohortRun(rd, batch, size, writes));
          worker.push(await workerRun(rd, batch, size, writes));
          rmSync(rd, { recursive: true, force: true });
        }
        const entries = writes * batch;
        const rate = (ms: number): number => (entries / ms) * 1000;
        const mb = (ms: number): number => (entries * size) / 1048576 / (ms / 1000);
        const c = median(cohort);
        const w = median(raw);
        const k = median(worker);
        rows.push(
          `| ${batch} | ${size === 100 ? '100 B' : '4 KB'} | ${fmt(rate(c))} | ${fmt(mb(c), 2)} | ${fmt(rate(w))} | ${fmt(mb(w), 2)} | ${fmt(c / w, 2)}x | ${fmt(rate(k))} |`,
        );
        process.stderr.write(`batch ${batch}, ${size} B: done\n`);
      }
    }
    process.stdout.write(
      `median of ${ROUNDS} interleaved rounds; durable (fsync per write)\n\n` +
        '| entries/batch | entry | Cohort entries/s | Cohort MB/s | raw entries/s | raw MB/s | Cohort/raw time | Cohort in a worker, entries/s |\n' +
        '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n' +
        `${rows.join('\n')}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
