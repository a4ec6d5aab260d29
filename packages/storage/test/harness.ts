import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry, EntryType, Logger } from '@cohort/core';
import { MemoryNodeStore } from '../src/memory-node-store.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import type { DurableNodeStore, KvRecord, LogLimits } from '../src/types.js';

/** Options every implementation accepts in the contract suite. */
export interface HarnessOptions {
  limits?: LogLimits;
  chunkBytes?: number;
  cacheEntries?: number;
}

/** Opens one implementation, and reopens it as a restarted node would. */
export interface StoreHarness {
  name: string;
  open(opts?: HarnessOptions): DurableNodeStore;
  /** Closes and opens the same durable state again. */
  reopen(store: DurableNodeStore): DurableNodeStore;
  cleanup(): void;
}

export function memoryHarness(): StoreHarness {
  return {
    name: 'MemoryNodeStore',
    open: (o = {}) => new MemoryNodeStore(o),
    // Every write is synced (autoSync), so a crash keeps it all: the restart a real node would do.
    reopen: (store) => {
      (store as MemoryNodeStore).crash();
      return store;
    },
    cleanup: () => {},
  };
}

export function sqliteHarness(): StoreHarness {
  return sqliteHarnessWith('inline');
}

/** The SQLite store with its writes on a writer thread. */
export function sqliteThreadHarness(): StoreHarness {
  return sqliteHarnessWith('thread');
}

function sqliteHarnessWith(writer: 'inline' | 'thread'): StoreHarness {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-storage-'));
  let n = 0;
  const files = new Map<DurableNodeStore, { file: string; opts: HarnessOptions }>();
  return {
    name: writer === 'inline' ? 'SqliteNodeStore' : 'SqliteNodeStore (writer thread)',
    open: (o = {}) => {
      const file = join(dir, `node-${n++}.db`);
      const s = SqliteNodeStore.open(file, { ...o, writer });
      files.set(s, { file, opts: o });
      return s;
    },
    reopen: (store) => {
      const info = files.get(store);
      if (!info) throw new Error('unknown store');
      store.close();
      const s = SqliteNodeStore.open(info.file, { ...info.opts, writer });
      files.set(s, info);
      return s;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const enc = new TextEncoder();

/** An entry with `data` as UTF-8 text. */
export function ent(index: number, term: number, data = `e${index}`, type: EntryType = 'normal'): Entry {
  return { index, term, type, data: enc.encode(data) };
}

/** Entries lo..hi inclusive, all in `term`. */
export function ents(lo: number, hi: number, term: number, size?: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++)
    out.push(size === undefined ? ent(i, term) : { ...ent(i, term), data: new Uint8Array(size).fill(i & 0xff) });
  return out;
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-storage-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Bytes as hex, for comparisons. */
export const hex = (b: Uint8Array | undefined): string | undefined => b && Buffer.from(b).toString('hex');

/** A record (or its absence) in a form `toEqual` compares. */
export function comparable(r: KvRecord | undefined): unknown {
  return (
    r && {
      key: hex(r.key),
      value: hex(r.value),
      c: r.createRevision,
      m: r.modifyRevision,
      x: r.expiresAt,
      v: r.version,
      t: r.type,
    }
  );
}

/** Blocks this thread for `ms` without taking any message (a writer thread's reports wait meanwhile). */
export function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Polls `cond` every 5 ms until it holds; throws naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Has the store's writer commit what it holds until `ok` (each flush takes the jobs queued by then). */
export async function flushUntil(store: SqliteNodeStore, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('timed out flushing the writer');
    await store.settled();
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A logger recording every info, warning and error line with its fields into `lines`. */
export function recordingLogger(lines: { msg: string; fields?: Record<string, unknown> }[]): Logger {
  const record = (msg: string, fields?: Record<string, unknown>) => lines.push({ msg, ...(fields ? { fields } : {}) });
  const log: Logger = { debug: () => {}, info: record, warn: record, error: record, child: () => log };
  return log;
}
