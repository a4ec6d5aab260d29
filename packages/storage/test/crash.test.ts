import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { checkDataDir } from '../src/check-data-dir.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { payload } from './fixtures/crash-data.js';
import { tempDir } from './harness.js';

const SEED = Number(process.env.COHORT_STORAGE_CRASH_SEED ?? 20261123);
const CYCLES = Number(process.env.COHORT_STORAGE_CRASH_CYCLES ?? 200);
const GROUPS = 3;
const writer = join(import.meta.dirname, 'fixtures', 'crash-writer.ts');

interface Acked {
  index: number;
  term: number;
}

/** A writer process that has loaded its modules and waits for `go`; spawned ahead so its start-up overlaps the previous cycle. */
interface Writer {
  child: ChildProcess;
  ready: Promise<void>;
  onLine: (line: string) => void;
  stderr: string;
}

function spawnWriter(dir: string, cacheDir: string): Writer {
  const child = spawn(process.execPath, ['--no-warnings', writer, dir, String(GROUPS)], {
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
      const [kind, group, index, t] = line.split(' ');
      if (kind !== 's' || group === undefined) return;
      // A line is printed only after write() returned: the entries are acknowledged as synced.
      acked.set(group, { index: Number(index), term: Number(t) });
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
    w.child.stdin?.write(`go ${seed} ${term}\n`);
    // Zero writes: the kill lands while the writer opens and recovers the store.
    if (writes === 0) {
      killed = true;
      w.child.kill('SIGKILL');
    }
  });
}

/**
 * Every acknowledged entry is present and intact; the log is contiguous with
 * non-decreasing terms. Returns the first violation, or undefined. (Plain
 * comparisons: thousands of `expect` calls per cycle would dominate the run.)
 */
function verify(dir: string, acked: Map<string, Acked>, quickCheck: boolean): string | undefined {
  const store = SqliteNodeStore.openDir(dir, { quickCheck });
  try {
    for (let g = 0; g < GROUPS; g++) {
      const name = `g${g}`;
      const r = store.group(name);
      const a = acked.get(name);
      if (a && r.lastIndex() < a.index) return `${name}: acknowledged up to ${a.index}, only ${r.lastIndex()} survived`;
      if (a && r.initialState().hardState.term < a.term) return `${name}: acknowledged term ${a.term} was lost`;
      let prevTerm = r.term(r.firstIndex() - 1);
      let expectIndex = r.firstIndex();
      for (const e of r.entries(r.firstIndex(), r.lastIndex() + 1, Number.MAX_SAFE_INTEGER)) {
        if (e.index !== expectIndex) return `${name}: expected entry ${expectIndex}, read ${e.index}`;
        if (e.term < prevTerm) return `${name}: term goes back at ${e.index}`;
        if (!Buffer.from(e.data).equals(Buffer.from(payload(g, e.index))))
          return `${name}: entry ${e.index} has wrong data`;
        prevTerm = e.term;
        expectIndex++;
      }
      if (expectIndex !== r.lastIndex() + 1) return `${name}: read up to ${expectIndex - 1} of ${r.lastIndex()}`;
    }
    return undefined;
  } finally {
    store.close();
  }
}

describe('SqliteNodeStore under SIGKILL', () => {
  it(`keeps every write acknowledged as synced across ${CYCLES} kills at random moments`, async () => {
    const { dir, cleanup } = tempDir();
    const cache = tempDir();
    const rng = new SeededRandom(SEED);
    const acked = new Map<string, Acked>();
    let next = spawnWriter(dir, cache.dir);
    try {
      for (let cycle = 1; cycle <= CYCLES; cycle++) {
        try {
          const w = next;
          const t0 = performance.now();
          await w.ready;
          const t1 = performance.now();
          next = spawnWriter(dir, cache.dir);
          await runAndKill(w, rng.nextU32(), cycle, rng.int(0, 4 * GROUPS), acked);
          const t2 = performance.now();
          expect(verify(dir, acked, cycle % 10 === 0)).toBeUndefined();
          if (process.env.COHORT_STORAGE_CRASH_TIMING)
            console.log(
              `ready ${(t1 - t0).toFixed(0)} run ${(t2 - t1).toFixed(0)} verify ${(performance.now() - t2).toFixed(0)}`,
            );
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
  }, 240_000);
});
