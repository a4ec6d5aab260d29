// Durable append throughput: Cohort's SqliteNodeStore next to one plain
// better-sqlite3 transaction of the same rows (the entries and the group's
// hard state row; WAL, synchronous=FULL), and a worker-thread variant of the
// Cohort write. Run: `pnpm run bench`.
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

interface Side {
  write(entries: Entry[], w: number): void | Promise<void>;
  close(): void | Promise<void>;
}

function cohortSide(dir: string): Side {
  const store = SqliteNodeStore.open(join(dir, 'cohort.db'));
  return {
    write: (entries, w) => store.writeSync([{ group: 'p1', entries, hardState: { term: 1, vote: 'n1', commit: w } }]),
    close: () => store.close(),
  };
}

/** Plain better-sqlite3: the same entry rows and the same one-row hard state update, in one transaction. */
function rawSide(dir: string): Side {
  const db = new Database(join(dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`
    CREATE TABLE entries (gid INTEGER, idx INTEGER, term INTEGER, type INTEGER, data BLOB, crc INTEGER, PRIMARY KEY (gid, idx)) WITHOUT ROWID;
    CREATE TABLE hard_state (gid INTEGER PRIMARY KEY, term INTEGER, vote TEXT, commit_index INTEGER);
    INSERT INTO hard_state VALUES (1, 0, '', 0);
  `);
  const ins = db.prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)');
  const hs = db.prepare('UPDATE hard_state SET term = ?, vote = ?, commit_index = ? WHERE gid = 1');
  const tx = db.transaction((entries: Entry[], commit: number) => {
    for (const e of entries) ins.run(1, e.index, e.term, 0, e.data, 0);
    hs.run(1, 'n1', commit);
  });
  return {
    write: (entries, w) => {
      tx(entries, w);
    },
    close: () => {
      db.close();
    },
  };
}

/** The Cohort write posted to a worker thread that owns the store, awaited before the next one. */
async function workerSide(dir: string): Promise<Side> {
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
      workerData: { lib: new URL('../dist/index.js', import.meta.url).href, file: join(dir, 'worker.db') },
    },
  );
  const next = (): Promise<unknown> => new Promise((resolve) => worker.once('message', resolve));
  await next();
  return {
    write: async (entries, w) => {
      const reply = next();
      worker.postMessage([{ group: 'p1', entries, hardState: { term: 1, vote: 'n1', commit: w } }]);
      await reply;
    },
    close: async () => {
      const closed = next();
      worker.postMessage('close');
      await closed;
      await worker.terminate();
    },
  };
}

/**
 * One round: the three sides write the same batches in turn, one write each
 * per step (rotating who goes first), so background load hits all alike.
 * Returns the total milliseconds each side spent in its writes.
 */
async function round(batch: number, size: number, writes: number): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-'));
  try {
    const sides = [rawSide(dir), cohortSide(dir), await workerSide(dir)];
    const total = [0, 0, 0];
    for (let w = 0; w < writes; w++) {
      const entries = makeBatch(1 + w * batch, batch, size);
      for (let k = 0; k < sides.length; k++) {
        const s = (w + k) % sides.length;
        const t0 = performance.now();
        await sides[s]?.write(entries, w * batch);
        total[s] = (total[s] as number) + performance.now() - t0;
      }
    }
    for (const side of sides) await side.close();
    return total;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmt = (n: number, digits = 0): string =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const size of SIZES) {
    for (const batch of BATCHES) {
      const writes = writesFor(batch);
      const rounds: number[][] = [];
      for (let r = 0; r < ROUNDS; r++) rounds.push(await round(batch, size, writes));
      const [raw, cohort, worker] = [0, 1, 2].map((k) => median(rounds.map((t) => t[k] as number))) as [
        number,
        number,
        number,
      ];
      const entries = writes * batch;
      const rate = (ms: number): number => (entries / ms) * 1000;
      const mb = (ms: number): number => (entries * size) / 1048576 / (ms / 1000);
      rows.push(
        `| ${batch} | ${size === 100 ? '100 B' : '4 KB'} | ${fmt(rate(cohort))} | ${fmt(mb(cohort), 2)} | ${fmt(rate(raw))} | ${fmt(mb(raw), 2)} | ${fmt(cohort / raw, 2)}x | ${fmt(rate(worker))} |`,
      );
      process.stderr.write(`batch ${batch}, ${size} B: done\n`);
    }
  }
  process.stdout.write(
    `${ROUNDS} rounds, median; each write durable (one transaction, one fsync); sides interleaved write by write\n\n` +
      '| entries/batch | entry | Cohort entries/s | Cohort MB/s | raw entries/s | raw MB/s | Cohort/raw time | Cohort in a worker, entries/s |\n' +
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n' +
      `${rows.join('\n')}\n`,
  );
}

await main();
