import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { checkDataDir } from '../src/check-data-dir.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { type Acked, checkLogs, encodeAcked } from './fixtures/crash-data.js';
import { tempDir } from './harness.js';

const SEED = Number(process.env.COHORT_STORAGE_CRASH_SEED ?? 20261123);
const CYCLES = Number(process.env.COHORT_STORAGE_CRASH_CYCLES ?? 200);
const GROUPS = 3;
const writer = join(import.meta.dirname, 'fixtures', 'crash-writer.ts');

/** A writer process that has loaded its modules and waits for `go`; spawned ahead so its start-up overlaps the previous cycle. */
interface Writer {
  child: ChildProcess;
  ready: Promise<void>;
  onLine: (line: string) => void;
  stderr: string;
}

type Mode = 'inline' | 'thread';

function spawnWriter(dir: string, cacheDir: string, mode: Mode): Writer {
  const child = spawn(process.execPath, ['--no-warnings', writer, dir, String(GROUPS), mode], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_COMPILE_CACHE: cacheDir },
  });
  let markReady: () => void = () => {};
  const ready = new Promise<void>((r) => {
    markReady = r;
  });
  const w: Writer = { child, ready, onLine: () => {}, stderr: '' };
  let buf = '';
  child.stderr?.on('data', (d: Buffer) => {
    w.stderr += d.toString();
  });
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'ready') markReady();
      else w.onLine(line);
    }
  });
  return w;
}

/** Lets a ready writer run until it has acknowledged `writes` durable writes, then kills it with SIGKILL. */
function runAndKill(w: Writer, seed: number, term: number, writes: number, acked: Map<string, Acked>): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    let killed = false;
    const deadline = setTimeout(() => {
      w.child.kill('SIGKILL');
      reject(new Error(`writer made no progress within 20 s: ${w.stderr}`));
    }, 20_000);
    w.onLine = (line) => {
      if (line.startsWith('violation')) {
        reject(new Error(`after the previous kill: ${line}`));
        return;
      }
      const [kind, group, index, t] = line.split(' ');
      if ((kind !== 's' && kind !== 'v') || group === undefined) return;
      // A line is printed only after write() returned: the entries (or an acceptor's votes, `v`) are
      // acknowledged as synced. The kill comes after some number of log writes.
      acked.set(group, { index: Number(index), term: Number(t) });
      if (kind === 'v') return;
      seen++;
      if (!killed && seen >= writes) {
        killed = true;
        w.child.kill('SIGKILL');
      }
    };
    w.child.on('exit', (_code, signal) => {
      clearTimeout(deadline);
      if (signal === 'SIGKILL' && killed) resolve();
      else reject(new Error(`writer exited on its own (signal ${signal}): ${w.stderr}`));
    });
    w.child.stdin?.write(`go ${seed} ${term} ${encodeAcked(acked)}\n`);
    // Zero writes: the kill lands while the writer opens and recovers the store.
    if (writes === 0) {
      killed = true;
      w.child.kill('SIGKILL');
    }
  });
}

function parentCheck(dir: string, acked: Map<string, Acked>): string | undefined {
  const store = SqliteNodeStore.openDir(dir);
  try {
    return checkLogs((g) => store.group(g), GROUPS, acked);
  } finally {
    store.close();
  }
}

describe.each([
  ['inline', CYCLES],
  // Writes in flight on the writer thread when the kill lands: fewer cycles, as each runs longer.
  ['thread', Math.ceil(CYCLES / 8)],
] as [Mode, number][])('SqliteNodeStore (%s writer) under SIGKILL', (mode, cycles) => {
  it(`keeps every write acknowledged as synced across ${cycles} kills at random moments`, async () => {
    const { dir, cleanup } = tempDir();
    const cache = tempDir();
    const rng = new SeededRandom(SEED);
    const acked = new Map<string, Acked>();
    let next = spawnWriter(dir, cache.dir, mode);
    try {
      for (let cycle = 1; cycle <= cycles; cycle++) {
        try {
          const w = next;
          await w.ready;
          next = spawnWriter(dir, cache.dir, mode);
          // Each writer first checks, after the previous kill, that every acknowledged write survived.
          await runAndKill(w, rng.nextU32(), cycle, rng.int(0, 4 * GROUPS), acked);
          // The parent checks too, now and then, with SQLite's quick_check on open.
          if (cycle % 25 === 0 || cycle === cycles) expect(parentCheck(dir, acked)).toBeUndefined();
        } catch (err) {
          (err as Error).message += ` [replay: COHORT_STORAGE_CRASH_SEED=${SEED}, failed at cycle ${cycle}]`;
          throw err;
        }
      }
      const report = checkDataDir(dir);
      expect(report.findings.filter((f) => f.severity === 'error')).toEqual([]);
      expect(report.groups).toHaveLength(GROUPS);
    } finally {
      next.child.kill('SIGKILL');
      cleanup();
      cache.cleanup();
    }
  }, 600_000);
});
