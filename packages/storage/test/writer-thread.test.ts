import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StorageError, emptyConfState } from '@cohort/core';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SqliteNodeStore, type SqliteNodeStoreOptions } from '../src/sqlite-node-store.js';
import { threadReads } from '../src/thread-io.js';
import { ent, ents, tempDir } from './harness.js';

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('SqliteNodeStore with its writer thread', () => {
  let dir: string;
  let cleanup: () => void;
  let gate: string;
  let store: SqliteNodeStore;
  const open = (): SqliteNodeStore =>
    SqliteNodeStore.open(join(dir, 'node.db'), { writer: 'thread', commitGate: gate, cacheEntries: 4 });
  /** Closes the store and opens the file again with the thread writer and `opts`. */
  const reopen = (opts: SqliteNodeStoreOptions): void => {
    store.close();
    store = SqliteNodeStore.open(join(dir, 'node.db'), { writer: 'thread', ...opts });
  };

  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
    gate = join(dir, 'gate');
    store = open();
  });
  afterEach(() => {
    rmSync(gate, { force: true });
    store.close();
    cleanup();
  });

  it('resolves a write only once its commit is done, in order, and serves reads meanwhile', async () => {
    await store.write([{ group: 'g', entries: ents(1, 3, 1), hardState: { term: 1, vote: 'n1', commit: 0 } }]);
    writeFileSync(gate, '');
    const done: number[] = [];
    const w1 = store.write([{ group: 'g', entries: ents(4, 10, 1) }]).then(() => done.push(1));
    const w2 = store.write([{ group: 'g', hardState: { term: 2, vote: 'n2', commit: 3 } }]).then(() => done.push(2));
    // A turn of the event loop passes with both writes held; reads see them already.
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toEqual([]);
    const g = store.group('g');
    expect(g.lastIndex()).toBe(10);
    expect(g.entries(1, 11, Number.MAX_SAFE_INTEGER).map((e) => text(e.data))).toEqual(
      Array.from({ length: 10 }, (_, i) => `e${i + 1}`),
    );
    expect(g.initialState().hardState).toEqual({ term: 2, vote: 'n2', commit: 3 });
    rmSync(gate);
    await Promise.all([w1, w2]);
    expect(done).toEqual([1, 2]);
  });

  it('caches an entry whose data views a larger buffer as a copy of its bytes, and any other as given', async () => {
    // An encoded command is a view of Node's Buffer pool; a received entry, of its message.
    const pool = Buffer.alloc(64 * 1024, 7);
    const pooled = pool.subarray(100, 105);
    pooled.set(new TextEncoder().encode('viewd'));
    const exact = new TextEncoder().encode('exact');
    const given = [
      { ...ent(1, 1), data: pooled },
      { ...ent(2, 1), data: exact },
    ];
    await store.write([{ group: 'g', entries: given }]);
    const cached = store.group('g').entries(1, 3, Number.MAX_SAFE_INTEGER);
    expect(cached.map((e) => text(e.data))).toEqual(['viewd', 'exact']);
    // The copy holds its five bytes only, not the 64 KiB it was a view of; the caller's entry is left as it was.
    expect(cached[0]?.data.buffer.byteLength).toBe(5);
    expect(given[0]?.data).toBe(pooled);
    expect(cached[1]?.data).toBe(exact);
    // Written to the file as given: read back from it (reopened, the cache holds the last entry only).
    await store.write([{ group: 'g', entries: ents(3, 8, 1) }]);
    reopen({ cacheEntries: 1 });
    expect(
      store
        .group('g')
        .entries(1, 3, Number.MAX_SAFE_INTEGER)
        .map((e) => text(e.data)),
    ).toEqual(['viewd', 'exact']);
  });

  it('reports what it queued as settled only once the writer committed it, or within a slack of jobs', async () => {
    expect(store.settled()).toBeUndefined();
    writeFileSync(gate, '');
    const w = store.write([{ group: 'g', entries: ents(1, 3, 1) }]);
    const settled = store.settled();
    expect(settled).toBeInstanceOf(Promise);
    // One job behind: within a slack of one, not of none.
    expect(store.settled(1)).toBeUndefined();
    let done = false;
    void settled?.then(() => {
      done = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    rmSync(gate);
    await settled;
    await w;
    expect(store.settled()).toBeUndefined();
  });

  it('holds a transaction that need not be durable until the next durable write, and commits both at once', async () => {
    reopen({ writerHoldMs: 60_000, writerApplyBatchMs: 0 });
    // The writer thread is up once a first write committed.
    await store.write([{ group: 'g', entries: ents(1, 1, 1) }]);
    const before = store.writerStats();
    expect([before.jobs, before.commits]).toEqual([1, 1]);
    const key = new Uint8Array([7]);
    store.transaction(() => store.kv('p').put(key, new Uint8Array([1]), { revision: 1 }), { durable: false });
    // Held: not handed to the writer (nothing more committed), yet served from the store's own view.
    await new Promise((r) => setTimeout(r, 100));
    expect(store.writerStats().jobs).toBe(1);
    expect(store.kv('p').get(key)?.value).toEqual(new Uint8Array([1]));
    await store.write([{ group: 'g', entries: ents(2, 2, 1) }]);
    const after = store.writerStats();
    expect([after.jobs, after.commits]).toEqual([3, 2]);
    expect(store.settled()).toBeUndefined();
    // By default a held transaction alone goes within a few milliseconds, with no one waiting on it.
    store.close();
    store = open();
    store.transaction(() => store.kv('p').put(key, new Uint8Array([2]), { revision: 2 }), { durable: false });
    expect(store.writerStats().jobs).toBe(0);
    await vi.waitFor(() => expect(store.writerStats().jobs).toBe(1), { timeout: 5_000, interval: 5 });
  });

  it('hands a held transaction to the writer at once when someone waits for the writes to settle', async () => {
    reopen({ writerHoldMs: 60_000, writerApplyBatchMs: 0 });
    await store.write([{ group: 'g', entries: ents(1, 1, 1) }]);
    store.transaction(() => store.kv('p').put(new Uint8Array([8]), new Uint8Array([8]), { revision: 1 }), {
      durable: false,
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(store.writerStats().jobs).toBe(1);
    // A snapshot view or an apply pause waits on settled(): not for the hold's minute.
    const started = Date.now();
    await store.settled();
    expect(Date.now() - started).toBeLessThan(10_000);
    const s = store.writerStats();
    expect([s.jobs, s.commits, s.durableCommits]).toEqual([2, 2, 1]);
    expect(store.settled()).toBeUndefined();
  });

  it('counts the commits fsynced and the time jobs waited for the writer while it committed earlier ones', async () => {
    await store.write([{ group: 'g', entries: ents(1, 1, 1) }]);
    let s = store.writerStats();
    expect([s.commits, s.durableCommits]).toEqual([1, 1]);
    // An apply transaction alone (handed over when settled() waits for it) commits without an fsync.
    store.transaction(() => store.kv('p').put(new Uint8Array([3]), new Uint8Array([3]), { revision: 1 }), {
      durable: false,
    });
    await store.settled();
    s = store.writerStats();
    expect([s.commits, s.durableCommits]).toEqual([2, 1]);
    const waited = s.waitMs;
    // The writer takes a log write and holds in its commit; a second one handed over meanwhile waits for it.
    writeFileSync(gate, '');
    const w1 = store.write([{ group: 'g', entries: ents(2, 2, 1) }]);
    await new Promise((r) => setTimeout(r, 100));
    const w2 = store.write([{ group: 'g', entries: ents(3, 3, 1) }]);
    await new Promise((r) => setTimeout(r, 100));
    rmSync(gate);
    await Promise.all([w1, w2]);
    s = store.writerStats();
    expect([s.commits, s.durableCommits]).toEqual([4, 3]);
    expect(s.waitMs - waited).toBeGreaterThanOrEqual(80);
    expect(s.commitMs).toBeGreaterThanOrEqual(80);
  });

  it("holds a transaction made after startWrites posted the turn's log write until the next durable write", async () => {
    reopen({ writerHoldMs: 60_000, writerApplyBatchMs: 0 });
    await store.write([{ group: 'g', entries: ents(1, 1, 1) }]);
    // A follower's round: its log write, handed over at once, then the apply of the entries the append committed.
    const w = store.write([{ group: 'g', entries: ents(2, 2, 1) }]);
    store.startWrites();
    store.transaction(() => store.kv('p').put(new Uint8Array([5]), new Uint8Array([5]), { revision: 1 }), {
      durable: false,
    });
    await w;
    await new Promise((r) => setTimeout(r, 100));
    // The end of the turn did not hand the apply over in a message of its own: it waits for the next log write.
    expect(store.writerStats().jobs).toBe(2);
    await store.write([{ group: 'g', entries: ents(3, 3, 1) }]);
    const s = store.writerStats();
    expect([s.jobs, s.commits]).toEqual([4, 3]);
  });

  it('hands the writes made so far to the writer on startWrites, not at the end of the turn', async () => {
    await store.write([{ group: 'g', entries: ents(1, 1, 1) }]);
    store.transaction(() => store.kv('p').put(new Uint8Array([9]), new Uint8Array([9]), { revision: 1 }), {
      durable: false,
    });
    const w = store.write([{ group: 'g', entries: ents(2, 2, 1) }]);
    // This thread stays busy (no microtask runs, no turn ends) while another connection watches the file.
    const reader = new Database(join(dir, 'node.db'), { readonly: true });
    const pause = new Int32Array(new SharedArrayBuffer(4));
    const entry = reader.prepare('SELECT count(*) FROM entries WHERE idx = 2').pluck();
    const watchFor = (ms: number): number => {
      const deadline = Date.now() + ms;
      while ((entry.get() as number) === 0 && Date.now() < deadline) Atomics.wait(pause, 0, 0, 5);
      return entry.get() as number;
    };
    try {
      // Queued for the end of the turn: it does not reach the writer while the turn goes on.
      expect(watchFor(200)).toBe(0);
      store.startWrites();
      expect(watchFor(5_000)).toBe(1);
      // The transaction queued before it was handed over with it: the writer holds it (see the next test).
      expect(reader.prepare('SELECT count(*) FROM kv').pluck().get()).toBe(0);
      await store.settled();
      expect(reader.prepare('SELECT count(*) FROM kv').pluck().get()).toBe(1);
    } finally {
      reader.close();
    }
    await w;
  });

  it('commits log writes ahead of the apply transactions it holds, and those together when waited for, before a compaction, or once held long enough', async () => {
    reopen({ writerHoldMs: 0, writerApplyBatchMs: 60_000 });
    const file = join(dir, 'node.db');
    await store.write([{ group: 'g', entries: ents(1, 1, 1) }]);
    const reader = new Database(file, { readonly: true });
    const rows = reader.prepare('SELECT count(*) FROM kv').pluck();
    const entries = reader.prepare('SELECT count(*) FROM entries').pluck();
    const put = (k: number): void => {
      store.transaction(() => store.kv('p').put(new Uint8Array([k]), new Uint8Array([k]), { revision: k }), {
        durable: false,
      });
    };
    try {
      put(1);
      // The log write resolves once durable, though the apply before it is held (not in the file).
      await store.write([{ group: 'g', entries: ents(2, 3, 1) }]);
      expect([entries.get(), rows.get()]).toEqual([3, 0]);
      expect(store.kv('p').get(new Uint8Array([1]))?.value).toEqual(new Uint8Array([1]));
      // Both held applies commit at once, in one transaction, when someone waits for the writes to settle.
      put(2);
      await new Promise((r) => setTimeout(r, 50));
      expect(rows.get()).toBe(0);
      const before = store.writerStats();
      await store.settled();
      expect(rows.get()).toBe(2);
      expect(store.writerStats().commits - before.commits).toBe(1);
      // A log compaction (a snapshot's) commits after every apply before it: the log keeps what the file's
      // machines have not applied.
      put(3);
      await store.write([{ group: 'g', entries: ents(4, 4, 1) }]);
      expect([entries.get(), rows.get()]).toEqual([4, 2]);
      const meta = { index: 3, term: 1, confState: { ...emptyConfState(), voters: ['n1'] } };
      await store.saveSnapshot('g', { meta, data: new Uint8Array([1]) }, 2);
      expect([entries.get(), rows.get()]).toEqual([2, 3]);
      // Held applies also commit by themselves once held `writerApplyBatchMs`, with no one waiting.
      reopen({ writerHoldMs: 0, writerApplyBatchMs: 30 });
      await store.write([{ group: 'g', entries: ents(5, 5, 1) }]);
      put(4);
      await store.write([{ group: 'g', entries: ents(6, 6, 1) }]);
      await vi.waitFor(() => expect(rows.get()).toBe(4), { timeout: 5_000, interval: 5 });
    } finally {
      reader.close();
    }
  });

  it("commits an acceptor's votes and promise ahead of the apply transactions it holds, and its compaction after them", async () => {
    reopen({ writerHoldMs: 0, writerApplyBatchMs: 60_000 });
    const reader = new Database(join(dir, 'node.db'), { readonly: true });
    const rows = reader.prepare('SELECT count(*) FROM kv').pluck();
    const votes = reader.prepare('SELECT count(*) FROM vp_votes').pluck();
    const vote = (slot: number) => ({ slot, ballot: 1, chosen: true, value: new Uint8Array([slot]) });
    try {
      store.transaction(() => store.kv('p').put(new Uint8Array([1]), new Uint8Array([1]), { revision: 1 }), {
        durable: false,
      });
      // The acceptor write resolves once durable, though the apply before it is held (not in the file).
      await store.saveAcceptor('vp', 1, [vote(1), vote(2)]);
      expect([votes.get(), rows.get()]).toEqual([2, 0]);
      // A compaction point must not get ahead of the applies it stands for: it commits after them.
      await store.saveAcceptor('vp', undefined, [vote(3)], 1);
      expect(rows.get()).toBe(1);
      expect(store.loadAcceptor('vp')).toMatchObject({ maxBallot: 1, compacted: 1, votes: [{ slot: 2 }, { slot: 3 }] });
    } finally {
      reader.close();
    }
  });

  it('shortens its hold of apply transactions while their ops read their pages from the file system, and lengthens it back while they do not', async () => {
    // A page cache of 10 pages on the writer's connection: 6,000 rows of 100-byte values fill ~200.
    reopen({ writerHoldMs: 0, writerApplyBatchMs: 40, commitGate: gate, pageCacheBytes: 40 * 1024 });
    await store.write([{ group: 'g', entries: ents(1, 1, 1) }]);
    expect(store.writerStats().applyHoldMs).toBe(40);
    const keys = 6_000;
    let revision = 0;
    const apply = (n: number, key: (i: number) => number): void => {
      store.transaction(
        () => {
          for (let i = 0; i < n; i++) {
            const k = key(i);
            store.kv('p').put(new Uint8Array([k >> 8, k & 255]), new Uint8Array(100), { revision: ++revision });
          }
        },
        { durable: false },
      );
    };
    /** Held applies of `n` ops committed by the writer once held long enough, while the gate holds each commit `gateMs`. */
    const heldCommit = async (n: number, key: (i: number) => number, gateMs: number): Promise<void> => {
      apply(n, key);
      const commits = store.writerStats().commits;
      if (gateMs > 0) {
        writeFileSync(gate, '');
        // Past the hold: the writer's commit of them waits at the gate (as on a slow disk or a busy machine).
        await new Promise((r) => setTimeout(r, gateMs));
        rmSync(gate);
      }
      await vi.waitFor(() => expect(store.writerStats().commits).toBe(commits + 1), { timeout: 5_000, interval: 5 });
    };
    // Every row first, and the partition's creation (jobs that keep their place: committed when waited for).
    apply(keys, (i) => i);
    await store.settled();
    const few = (i: number): number => i % 4;
    const scattered = (i: number): number => (i * 2_903) % keys;
    if (threadReads() !== undefined) {
      // The kernel counts the writer's reads: a slow commit whose ops found their pages cached keeps the hold.
      await heldCommit(150, few, 100);
      expect(store.writerStats().applyHoldMs).toBe(40);
      // One over rows scattered across pages the connection does not cache takes a quarter off, however fast.
      await heldCommit(150, scattered, 0);
    } else {
      // Elsewhere a commit's time an op stands in: a slow one takes a quarter off.
      await heldCommit(150, scattered, 100);
    }
    expect(store.writerStats().applyHoldMs).toBe(30);
    // Cheap commits (a few keys rewritten, their page cached; no gate) lengthen it back, up to the most it was given.
    await vi.waitFor(
      () => {
        apply(2_000, few);
        expect(store.writerStats().applyHoldMs).toBe(40);
      },
      { timeout: 10_000, interval: 60 },
    );
  });

  it('keeps serving a suffix rewritten while the older one is not committed yet, past the cache bound', async () => {
    await store.write([{ group: 'g', entries: ents(1, 8, 1) }]);
    writeFileSync(gate, '');
    // Entries 5..8 of term 1 are on disk; 5..12 of term 2 replace them in a held commit.
    const w = store.write([
      { group: 'g', entries: ents(5, 12, 2).map((e) => ({ ...e, data: ent(e.index, 2, `t2-${e.index}`).data })) },
    ]);
    const g = store.group('g');
    expect(g.entries(1, 13, Number.MAX_SAFE_INTEGER).map((e) => `${e.term}:${text(e.data)}`)).toEqual([
      ...[1, 2, 3, 4].map((i) => `1:e${i}`),
      ...[5, 6, 7, 8, 9, 10, 11, 12].map((i) => `2:t2-${i}`),
    ]);
    expect(g.term(6)).toBe(2);
    // e1..e4, then t2-5..t2-9 and t2-10..t2-12.
    expect(store.stats('g').bytes).toBe(4 * 2 + 5 * 4 + 3 * 5);
    rmSync(gate);
    await w;
    store.close();
    store = open();
    expect(
      store
        .group('g')
        .entries(1, 13, Number.MAX_SAFE_INTEGER)
        .map((e) => e.term),
    ).toEqual([...Array(4).fill(1), ...Array(8).fill(2)]);
  });

  it('installs a snapshot larger than its bounded backlog of jobs', () => {
    const kv = store.kv('p');
    const installer = kv.beginInstall();
    const enc = new TextEncoder();
    for (let i = 0; i < 8000; i++)
      installer.put({
        key: enc.encode(`k${i}`),
        value: enc.encode(`v${i}`),
        createRevision: 1,
        modifyRevision: 1,
        version: 1,
      });
    installer.commit({ index: 5, term: 1, confState: { ...emptyConfState(), voters: ['n1'] } });
    expect(kv.count()).toBe(8000);
    expect(text(kv.get(enc.encode('k7999'))?.value ?? new Uint8Array())).toBe('v7999');
    expect(kv.applied().index).toBe(5);
  });

  it('installs every field of a row as written: types, revisions, versions, expiry, empty values', () => {
    const kv = store.kv('p');
    const enc = new TextEncoder();
    const rows = Array.from({ length: 2500 }, (_, i) => ({
      key: enc.encode(`k${String(i).padStart(5, '0')}`),
      value: i % 7 === 0 ? new Uint8Array() : enc.encode(`v${i}`.repeat(1 + (i % 50))),
      createRevision: 1 + i,
      modifyRevision: 2 ** 40 + i,
      version: 1 + (i % 9),
      ...(i % 3 === 0 ? { expiresAt: 1_700_000_000_000 + i } : {}),
      ...(i % 5 === 1 ? { type: 'hash' as const } : i % 5 === 2 ? { type: 'list' as const } : {}),
    }));
    const installer = kv.beginInstall();
    for (const r of rows) installer.put(r);
    installer.commit({ index: 9, term: 2, confState: { ...emptyConfState(), voters: ['n1'] } });
    // Read back through the CRC check of every row.
    const got = kv.scan({ limit: 10_000 });
    expect(got).toHaveLength(rows.length);
    got.forEach((r, i) => {
      const want = rows[i] as (typeof rows)[number];
      expect({ ...r, key: text(r.key), value: Buffer.from(r.value).toString('hex') }).toEqual({
        ...want,
        key: text(want.key),
        value: Buffer.from(want.value).toString('hex'),
      });
    });
  });

  it('commits keys, values and entries that view pooled or larger buffers as their own bytes', async () => {
    // Pooled Buffers and slices of one large read, as a request's or a peer message's bytes arrive.
    const read = new Uint8Array(65_536).map((_, i) => i % 253);
    const entries = ents(1, 3, 1).map((e, i) => ({ ...e, data: read.subarray(1000 * i, 1000 * i + 300) }));
    const rows = Array.from({ length: 20 }, (_, i) => ({
      key: Buffer.from(`key:${String(i).padStart(12, '0')}`),
      value: i % 2 === 0 ? read.subarray(i * 97, i * 97 + 100) : Buffer.from(`pooled value ${i}`),
    }));
    store.transaction(() => {
      rows.forEach((r, i) => store.kv('p').put(r.key, r.value, { revision: i + 1 }));
    });
    await store.write([{ group: 'g', entries, hardState: { term: 1, vote: 'n1', commit: 3 } }]);
    store.close();
    store = SqliteNodeStore.open(join(dir, 'node.db'));
    for (const r of rows) expect(store.kv('p').get(r.key)?.value).toEqual(new Uint8Array(r.value));
    expect(
      store
        .group('g')
        .entries(1, 4, Number.MAX_SAFE_INTEGER)
        .map((e) => Array.from(e.data)),
    ).toEqual(entries.map((e) => Array.from(e.data)));
  });

  it('rejects the write, and every one after it, with the reason when the writer fails', async () => {
    await store.write([{ group: 'g', entries: ents(1, 2, 1) }]);
    // Pulled from under the writer: its next insert fails.
    store.database.exec('DROP TABLE entries');
    await expect(store.write([{ group: 'g', entries: ents(3, 3, 1) }])).rejects.toThrow(
      /node\.db: write failed: no such table: entries/,
    );
    await expect(store.write([{ group: 'g', entries: ents(4, 4, 1) }])).rejects.toBeInstanceOf(StorageError);
    expect(() =>
      store.transaction(() => store.kv('p').put(new Uint8Array([1]), new Uint8Array([1]), { revision: 1 })),
    ).toThrow(/write failed/);
  });
  it('lets the reads of one turn share a read transaction, ended by a commit report, a transaction or the next turn', async () => {
    const kv = store.kv('p');
    const key = (i: number): Uint8Array => new TextEncoder().encode(`k${i}`);
    store.transaction(() => kv.put(key(1), key(1), { revision: 1 }));
    store.flush();
    // A read of the file (no pending write of its key) opens the scope; the next turn closes it.
    expect(kv.get(key(2))).toBeUndefined();
    expect(store.database.inTransaction).toBe(true);
    expect(text(kv.get(key(1))?.value ?? new Uint8Array())).toBe('k1');
    await new Promise((r) => setImmediate(r));
    expect(store.database.inTransaction).toBe(false);
    // A transaction ends it first: its reads see the file as it is.
    expect(kv.get(key(2))).toBeUndefined();
    store.transaction(() => kv.put(key(2), key(2), { revision: 2 }));
    expect(store.database.inTransaction).toBe(false);
    // While the scope holds its snapshot, the writer commits: the rows stay served from the overlay until
    // the report, which ends the scope, and the file serves them after it.
    expect(kv.get(key(3))).toBeUndefined();
    expect(store.database.inTransaction).toBe(true);
    store.flush();
    expect(store.database.inTransaction).toBe(false);
    expect(text(kv.get(key(2))?.value ?? new Uint8Array())).toBe('k2');
    expect(kv.count()).toBe(2);
  });
});
