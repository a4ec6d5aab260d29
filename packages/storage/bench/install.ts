// Snapshot install cost: a partition's rows written through
// `PartitionKv.beginInstall()` on the store with its writer thread (as a
// follower installs a streamed snapshot), next to the same rows inserted by one
// plain better-sqlite3 connection in transactions of a thousand. Reports the
// wall time and the CPU time of the whole process (every thread) and of the
// calling (event loop) thread, per row. Run: `pnpm run bench`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyConfState } from '@cohort/core';
import Database from 'better-sqlite3';
import { type KvRecord, SqliteNodeStore } from '../dist/index.js';

const ROWS = Number(process.env.COHORT_BENCH_INSTALL_ROWS ?? 300_000);
const ROUNDS = Number(process.env.COHORT_BENCH_ROUNDS ?? 3);

interface Cost {
  wallMs: number;
  cpuMs: number;
  loopCpuMs: number;
}

/** The calling thread's CPU time (Node 23.9+), else the process's. */
const threadCpu = (): NodeJS.CpuUsage =>
  (process as NodeJS.Process & { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage?.() ?? process.cpuUsage();
const ms = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

function measure(run: () => void): Cost {
  const cpu = process.cpuUsage();
  const loop = threadCpu();
  const t0 = performance.now();
  run();
  const wallMs = performance.now() - t0;
  return { wallMs, cpuMs: ms(process.cpuUsage(cpu)), loopCpuMs: ms(threadCpu()) - ms(loop) };
}

function records(): KvRecord[] {
  const enc = new TextEncoder();
  return Array.from({ length: ROWS }, (_, i) => ({
    key: enc.encode(`key:${String(i).padStart(12, '0')}`),
    value: new Uint8Array(100).fill(i & 0xff),
    createRevision: i + 1,
    modifyRevision: i + 1,
    version: 1,
  }));
}

function cohort(rows: KvRecord[]): Cost {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-'));
  const store = SqliteNodeStore.open(join(dir, 'node.db'), { writer: 'thread' });
  try {
    const kv = store.kv('p1');
    return measure(() => {
      const installer = kv.beginInstall();
      for (const r of rows) installer.put(r);
      installer.commit({ index: ROWS, term: 1, confState: { ...emptyConfState(), voters: ['n1'] } });
    });
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function raw(rows: KvRecord[]): Cost {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-'));
  const db = new Database(join(dir, 'raw.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`CREATE TABLE kv (gen_id INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
      mod_rev INTEGER NOT NULL, expires_at INTEGER, crc INTEGER NOT NULL, version INTEGER NOT NULL, type INTEGER NOT NULL,
      PRIMARY KEY (gen_id, key)) WITHOUT ROWID`);
    const ins = db.prepare('INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const batch = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const r = rows[i] as KvRecord;
        ins.run(2, Buffer.from(r.key), Buffer.from(r.value), r.createRevision, r.modifyRevision, null, 0, 1, 0);
      }
    });
    return measure(() => {
      for (let i = 0; i < rows.length; i += 1000) batch(i, Math.min(rows.length, i + 1000));
      db.pragma('synchronous = FULL');
      db.prepare('CREATE TABLE IF NOT EXISTS done (x)').run();
    });
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const us = (total: number): string => ((total * 1000) / ROWS).toFixed(2);

const rows = records();
const sides = { cohort: [] as Cost[], raw: [] as Cost[] };
for (let r = 0; r < ROUNDS; r++) {
  // Alternated, so background load hits both alike.
  if (r % 2 === 0) {
    sides.cohort.push(cohort(rows));
    sides.raw.push(raw(rows));
  } else {
    sides.raw.push(raw(rows));
    sides.cohort.push(cohort(rows));
  }
  process.stderr.write(`install round ${r + 1}: done\n`);
}
const line = (name: string, c: Cost[]): string =>
  `| ${name} | ${us(median(c.map((x) => x.wallMs)))} | ${us(median(c.map((x) => x.cpuMs)))} | ${us(median(c.map((x) => x.loopCpuMs)))} |`;
process.stdout.write(
  `\nSnapshot install of ${ROWS.toLocaleString('en-US')} rows (100-byte values), ${ROUNDS} rounds, median, µs per row\n\n` +
    '| side | wall | CPU, all threads | CPU, calling thread |\n| --- | ---: | ---: | ---: |\n' +
    `${line('Cohort install (writer thread)', sides.cohort)}\n${line('plain better-sqlite3 inserts', sides.raw)}\n`,
);
