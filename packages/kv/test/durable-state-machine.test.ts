import { CodecError, CorruptStateError, type Entry } from '@cohort/core';
import { MemoryNodeStore, SqliteNodeStore } from '@cohort/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvSnapshotChunkPb, KvSnapshotPb } from '../src/generated/kv-command.js';
import { DUPLICATE_ACKNOWLEDGED, type KvCommand, KvStateMachine } from '../src/index.js';
import {
  CONF,
  type MachineHarness,
  b,
  entry,
  memoryMachine,
  setCmd,
  sqliteMachine,
  sqliteThreadMachine,
  text,
} from './harness.js';

const incr = (key: string, now: number, session?: { clientId: string; seq: number; lowWater: number }): KvCommand =>
  session ? { op: 'incr', key: b(key), delta: 1n, now, session } : { op: 'incr', key: b(key), delta: 1n, now };

/** Reads every chunk of a machine's snapshot into another machine. */
async function transfer(
  from: KvStateMachine,
  to: KvStateMachine,
  maxBytes: number,
  between?: () => void,
): Promise<number> {
  const reader = await from.openSnapshot();
  const writer = to.receiveSnapshot(reader.meta);
  let seq = 0;
  for (let c = await reader.next(maxBytes); c; c = await reader.next(maxBytes)) {
    writer.write(seq++, c);
    between?.();
  }
  reader.close();
  writer.commit();
  return seq;
}

describe.each([
  ['MemoryNodeStore', memoryMachine],
  ['SqliteNodeStore', sqliteMachine],
  ['SqliteNodeStore (writer thread)', sqliteThreadMachine],
])('KvStateMachine on %s', (_name, make) => {
  let h: MachineHarness;
  beforeEach(() => {
    h = make();
  });
  afterEach(() => h.cleanup());

  it('applies a batch atomically with its applied position; no-op entries only move it', () => {
    const out = h.sm.applyBatch(
      [
        entry(1, setCmd('a', '1')),
        { index: 2, term: 2, type: 'normal', data: new Uint8Array() },
        entry(3, setCmd('b', '2'), 2),
        { index: 4, term: 2, type: 'confChange', data: b('conf') },
      ],
      CONF,
    );
    expect(out).toEqual([
      { ok: true, value: { type: 'ok' } },
      undefined,
      { ok: true, value: { type: 'ok' } },
      undefined,
    ]);
    expect(h.sm.applied()).toEqual({ index: 4, term: 2, confState: CONF });
    expect(h.sm.get(b('a'), 0)).toBeDefined();
    expect(h.store.kv('p1').get(b('b'))).toMatchObject({ createRevision: 3, modifyRevision: 3 });
  });

  /** Applies SETs of keys a and bad, then damages bad's row where the store keeps it. */
  const writeThenDamage = (): void => {
    h.sm.applyBatch([entry(1, setCmd('a', '1')), entry(2, setCmd('bad', 'x'))], CONF);
    if (h.store instanceof MemoryNodeStore) h.store.corruptKvRow('p1', b('bad'));
    else {
      // Damaged on disk once the writer committed it (until then reads come from memory).
      const store = h.store as SqliteNodeStore;
      store.flush();
      store.database.prepare("UPDATE kv SET value = x'00' WHERE key = ?").run(Buffer.from('bad'));
    }
  };

  it('rolls back a whole batch, applied position included, when storage fails mid-batch', () => {
    writeThenDamage();
    // INCR reads the row (a plain SET need not: see the next test).
    expect(() => h.sm.applyBatch([entry(3, setCmd('a', '2')), entry(4, incr('bad', 0))], CONF)).toThrow(
      /partition p1: KV row for key 626164 is corrupt/,
    );
    expect(h.sm.appliedIndex).toBe(2);
    expect(text(h.sm.get(b('a'), 0))).toBe('1');
  });

  it('finds a corrupt row a plain SET replaces, and refuses the next batch so the partition is repaired', () => {
    writeThenDamage();
    const corrupt = /partition p1: KV row for key 626164 (is|was) corrupt/;
    let applied = 2;
    try {
      // The in-memory store checks the row as it replaces it; the SQLite store's writer does, as it writes.
      h.sm.applyBatch([entry(3, setCmd('bad', 'y'))], CONF);
      applied = 3;
      if (h.store instanceof SqliteNodeStore) h.store.flush();
      h.sm.applyBatch([entry(4, setCmd('a', '2'))], CONF);
      applied = 4;
    } catch (err) {
      expect(err).toBeInstanceOf(CorruptStateError);
      expect((err as Error).message).toMatch(corrupt);
    }
    expect(applied).toBe(h.store instanceof MemoryNodeStore ? 2 : 3);
    expect(h.sm.appliedIndex).toBe(applied);
    expect(text(h.sm.get(b('a'), 0))).toBe('1');
    // The row stays unreadable until the partition is replaced from a healthy replica.
    expect(() => h.sm.get(b('bad'), 0)).toThrow(corrupt);
  });

  it('answers a bad command with an error outcome every replica meets alike', () => {
    const [out] = h.sm.applyBatch([{ index: 1, term: 1, type: 'normal', data: new Uint8Array([0xff, 0xff]) }], CONF);
    expect(out?.ok).toBe(false);
    expect(out && !out.ok && out.error).toBeInstanceOf(CodecError);
    expect(h.sm.appliedIndex).toBe(1);
  });

  it('resumes from its own applied index after a restart and skips entries it already applied', () => {
    h.sm.applyBatch(
      [1, 2, 3].map((i) => entry(i, incr('n', 1000 + i))),
      CONF,
    );
    h.restart();
    expect(h.sm.applied()).toEqual({ index: 3, term: 1, confState: CONF });
    expect(h.sm.logTime).toBe(1003);
    // The host replays from its log: entries at or below the applied index are not applied twice.
    const out = h.sm.applyBatch(
      [2, 3, 4].map((i) => entry(i, incr('n', 1000 + i))),
      CONF,
    );
    expect(out).toEqual([undefined, undefined, { ok: true, value: { type: 'int', value: 4n } }]);
    expect(text(h.sm.get(b('n'), 0))).toBe('4');
  });

  it('applies a retried (client, seq) once and returns the stored response', () => {
    const c = (seq: number, lowWater = 0) => ({ clientId: 'c1', seq, lowWater });
    const first = h.sm.applyBatch([entry(1, incr('n', 10, c(1))), entry(2, incr('n', 11, c(2)))], CONF);
    expect(first.map((o) => o?.ok && o.value)).toEqual([
      { type: 'int', value: 1n },
      { type: 'int', value: 2n },
    ]);
    // Both retried after a leader change, in the other order, with a third in flight.
    const retry = h.sm.applyBatch(
      [entry(3, incr('n', 12, c(2))), entry(4, incr('n', 12, c(1))), entry(5, incr('n', 13, c(3)))],
      CONF,
    );
    expect(retry.map((o) => o?.ok && o.value)).toEqual([
      { type: 'int', value: 2n },
      { type: 'int', value: 1n },
      { type: 'int', value: 3n },
    ]);
    expect(text(h.sm.get(b('n'), 0))).toBe('3');
    // The client acknowledges up to 2; a late retry of 1 is refused, never applied again.
    h.sm.applyBatch([entry(6, incr('n', 14, c(4, 2)))], CONF);
    h.restart();
    const [late] = h.sm.applyBatch([entry(7, incr('n', 15, c(1, 2)))], CONF);
    expect(late).toEqual({ ok: true, value: DUPLICATE_ACKNOWLEDGED });
    expect(DUPLICATE_ACKNOWLEDGED).toEqual({ type: 'error', message: 'ERR duplicate request already acknowledged' });
    const [again] = h.sm.applyBatch([entry(8, incr('n', 16, c(3, 2)))], CONF);
    expect(again).toEqual({ ok: true, value: { type: 'int', value: 3n } });
    expect(text(h.sm.get(b('n'), 0))).toBe('4');
  });

  it('drops sessions idle longer than the TTL by log time, deterministically', () => {
    h.cleanup();
    h = make({ sessionTtlMs: 1000 });
    h.sm.applyBatch([entry(1, incr('n', 0, { clientId: 'old', seq: 1, lowWater: 0 }))], CONF);
    h.sm.applyBatch([entry(2, incr('n', 900, { clientId: 'new', seq: 1, lowWater: 0 }))], CONF);
    expect(h.store.kv('p1').session('old')).toBeDefined();
    h.sm.applyBatch([entry(3, setCmd('x', 'y', 1500))], CONF);
    // Sweeps happen at log indexes every replica shares (multiples of 16).
    expect(h.store.kv('p1').session('old')).toBeDefined();
    h.sm.applyBatch([entry(16, setCmd('x', 'y', 1500))], CONF);
    expect(h.store.kv('p1').session('old')).toBeUndefined();
    expect(h.store.kv('p1').session('new')).toBeDefined();
  });

  it('keeps log time monotonic: a leader with a clock behind cannot revive an expired key', () => {
    h.sm.applyBatch([entry(1, setCmd('t', 'v', 1000, { expiresAt: 2000 })), entry(2, setCmd('x', '1', 2500))], CONF);
    // A new leader stamps an earlier time; the machine keeps 2500.
    const [out] = h.sm.applyBatch([entry(3, setCmd('t', 'w', 1500, { condition: 'xx' }))], CONF);
    expect(out).toEqual({ ok: true, value: { type: 'nil' } });
    expect(h.sm.logTime).toBe(2500);
  });

  it('follows Redis 7 expiry: EXPIRE flags, past deadlines, PERSIST, KEEPTTL, INCR keeping the TTL', () => {
    const exp = (key: string, deadline: number, flag: 'always' | 'nx' | 'xx' | 'gt' | 'lt', now = 1000): KvCommand => ({
      op: 'expire',
      key: b(key),
      deadline,
      flag,
      now,
    });
    const run = (i: number, cmd: KvCommand) => {
      const [o] = h.sm.applyBatch([entry(i, cmd)], CONF);
      return o?.ok ? o.value : o;
    };
    const one = { type: 'int', value: 1n };
    const zero = { type: 'int', value: 0n };
    run(1, setCmd('k', 'v'));
    expect(run(2, exp('absent', 5000, 'always'))).toEqual(zero);
    expect(run(3, exp('k', 5000, 'xx'))).toEqual(zero);
    expect(run(4, exp('k', 5000, 'gt'))).toEqual(zero);
    expect(run(5, exp('k', 5000, 'nx'))).toEqual(one);
    expect(run(6, exp('k', 6000, 'nx'))).toEqual(zero);
    expect(run(7, exp('k', 4000, 'gt'))).toEqual(zero);
    expect(run(8, exp('k', 4000, 'lt'))).toEqual(one);
    expect(h.sm.ttl(b('k'), 1000)).toBe(3000);
    expect(h.store.kv('p1').get(b('k'))).toMatchObject({ createRevision: 1, modifyRevision: 8 });
    run(9, incr('k2', 1000));
    run(10, exp('k2', 3000, 'always'));
    run(11, incr('k2', 1000));
    expect(h.sm.ttl(b('k2'), 1000)).toBe(2000);
    run(12, setCmd('k2', 'x', 1000, { keepTtl: true }));
    expect(h.sm.ttl(b('k2'), 1000)).toBe(2000);
    run(13, setCmd('k2', 'y', 1000));
    expect(h.sm.ttl(b('k2'), 1000)).toBe(-1);
    expect(run(14, { op: 'persist', key: b('k2'), now: 1000 })).toEqual(zero);
    expect(run(15, { op: 'persist', key: b('k'), now: 1000 })).toEqual(one);
    expect(h.sm.ttl(b('k'), 1000)).toBe(-1);
    expect(h.sm.ttl(b('absent'), 1000)).toBe(-2);
    // A deadline at or before now deletes the key.
    expect(run(16, exp('k', 1000, 'always'))).toEqual(one);
    expect(h.sm.has(b('k'), 1000)).toBe(false);
    expect(h.sm.size).toBe(1);
  });

  it('never reads an expired key, and the sweeper deletes only keys still expired at its entry', () => {
    h.sm.applyBatch(
      [
        entry(1, setCmd('a', '1', 1000, { expiresAt: 1500 })),
        entry(2, setCmd('b', '2', 1000, { expiresAt: 1400 })),
        entry(3, setCmd('c', '3', 1000, { expiresAt: 9000 })),
      ],
      CONF,
    );
    expect(h.sm.get(b('a'), 1499)).toBeDefined();
    expect(h.sm.get(b('a'), 1500)).toBeUndefined();
    expect(h.sm.ttl(b('a'), 1500)).toBe(-2);
    const due = h.sm.expiredKeys(1600, 10);
    expect(due.map(text)).toEqual(['b', 'a']);
    // Between the sweep and its entry, 'a' is written again: it survives.
    h.sm.applyBatch([entry(4, setCmd('a', 'fresh', 1600))], CONF);
    const [swept] = h.sm.applyBatch([entry(5, { op: 'delExpired', keys: due, now: 1600 })], CONF);
    expect(swept).toEqual({ ok: true, value: { type: 'int', value: 1n } });
    expect(text(h.sm.get(b('a'), 1600))).toBe('fresh');
    expect(h.sm.size).toBe(2);
    expect(h.sm.expiredKeys(1600, 10)).toEqual([]);
  });

  it('records the same digest at a checksum entry on replicas that batch differently', () => {
    const entries: Entry[] = [];
    for (let i = 1; i <= 40; i++) {
      entries.push(
        i === 25
          ? entry(i, { op: 'checksum', now: 1000 + i })
          : entry(i, incr(`k${i % 7}`, 1000 + i, { clientId: 'c', seq: i, lowWater: Math.max(0, i - 3) })),
      );
    }
    h.sm.applyBatch(entries, CONF);
    const peer = h.peer();
    for (const e of entries) peer.applyBatch([e], CONF);
    expect(h.sm.digestAt(25)).toMatch(/^[0-9a-f]{64}$/);
    expect(peer.digestAt(25)).toBe(h.sm.digestAt(25));
    expect(h.sm.digest()).toBe(peer.digest());
    expect(h.sm.digestAt(24)).toBeUndefined();
  });

  it('hashes a checksum entry slice by slice when given a scheduler, to the digest of exactly its index', () => {
    const queued: (() => void)[] = [];
    const sliced = new KvStateMachine(h.store, 'sliced', { defer: (fn) => queued.push(fn) });
    const entries: Entry[] = [];
    for (let i = 1; i <= 4500; i++) entries.push(entry(i, setCmd(`k${String(i).padStart(5, '0')}`, 'v', 1000 + i)));
    entries.push(entry(4501, { op: 'checksum', now: 20_000 }));
    sliced.applyBatch(entries, CONF);
    // Pending until its slices run; writes after the entry do not change it.
    expect(sliced.digestAt(4501)).toBeUndefined();
    expect(sliced.digestPending(4501)).toBe(true);
    sliced.applyBatch([entry(4502, setCmd('k00001', 'changed', 20_001))], CONF);
    let slices = 0;
    while (queued.length > 0) {
      queued.shift()?.();
      slices++;
    }
    expect(slices).toBeGreaterThanOrEqual(1);
    expect(sliced.digestPending(4501)).toBe(false);
    const peer = h.peer();
    peer.applyBatch(entries, CONF);
    expect(sliced.digestAt(4501)).toBe(peer.digestAt(4501));
  });

  it('streams a snapshot taken while writes continue that equals the state at its index', async () => {
    const batch: Entry[] = [];
    for (let i = 1; i <= 300; i++) {
      batch.push(
        entry(
          i,
          setCmd(`key-${String(i).padStart(4, '0')}`, 'v'.repeat(i % 50), 1000 + i, {
            session: { clientId: `c${i % 5}`, seq: i, lowWater: 0 },
          }),
        ),
      );
    }
    batch.push(entry(301, { op: 'checksum', now: 2000 }));
    h.sm.applyBatch(batch, CONF);
    const atIndex = h.sm.digestAt(301);
    const peer = h.peer();
    let next = 302;
    const chunks = await transfer(h.sm, peer, 1024, () => {
      // The leader keeps applying while the follower receives.
      h.sm.applyBatch(
        [entry(next, setCmd(`key-${String(next % 300).padStart(4, '0')}`, 'changed', 2000 + next))],
        CONF,
      );
      next++;
    });
    expect(chunks).toBeGreaterThan(5);
    expect(peer.applied()).toEqual({ index: 301, term: 1, confState: CONF });
    expect(peer.logTime).toBe(2000);
    expect(peer.digest()).toBe(atIndex);
    expect(h.sm.digest()).not.toBe(atIndex);
    // The follower carries on from the snapshot with the sessions it received.
    const [retry] = peer.applyBatch(
      [entry(302, setCmd('key-0007', 'again', 3000, { session: { clientId: 'c2', seq: 7, lowWater: 0 } }))],
      CONF,
    );
    expect(retry).toEqual({ ok: true, value: { type: 'ok' } });
    expect(text(peer.get(b('key-0007'), 3000))).toBe('v'.repeat(7));
  });

  it('refuses a corrupt chunk, a chunk from a newer format and chunks out of order; ignores a resent chunk', async () => {
    h.sm.applyBatch([entry(1, setCmd('a', '1')), entry(2, setCmd('b', '2'))], CONF);
    const reader = await h.sm.openSnapshot();
    const chunk = (await reader.next(1 << 20)) as Uint8Array;
    reader.close();
    const peer = h.peer();
    const bad = chunk.slice();
    bad[bad.length - 8] = (bad[bad.length - 8] as number) ^ 0xff;
    const w1 = peer.receiveSnapshot(reader.meta);
    expect(() => w1.write(0, bad)).toThrow(CodecError);
    expect(() => w1.write(0, bad)).toThrow(/partition p1: snapshot chunk 0 .*(corrupt|decode)/);
    w1.abort();
    const env = KvSnapshotChunkPb.decode(chunk);
    const newer = KvSnapshotChunkPb.encode({ ...env, version: 99 });
    const w2 = peer.receiveSnapshot(reader.meta);
    expect(() => w2.write(0, newer)).toThrow('snapshot format 99 is newer than this build reads (4); upgrade the node');
    expect(() => w2.write(1, chunk)).toThrow(/chunk 1 arrived, expected chunk 0/);
    w2.abort();
    expect(peer.appliedIndex).toBe(0);
    expect(peer.size).toBe(0);
    // A chunk resent after a lost acknowledgement is written once.
    const w3 = peer.receiveSnapshot(reader.meta);
    w3.write(0, chunk);
    w3.write(0, chunk);
    w3.commit();
    expect(peer.size).toBe(2);
    expect(peer.digest()).toBe(h.sm.digest());
  });

  it('restores an image of the format before state lived on disk', () => {
    const legacy = KvSnapshotPb.encode({
      version: 1,
      appliedIndex: 42n,
      keys: [b('a'), b('t')],
      values: [b('1'), b('2')],
      expiresAt: [0n, 5000n],
    });
    h.sm.applyBatch([entry(1, setCmd('gone', 'x'))], CONF);
    h.sm.restoreLegacy({ meta: { index: 42, term: 3, confState: CONF }, data: legacy });
    h.restart();
    expect(h.sm.applied()).toEqual({ index: 42, term: 3, confState: CONF });
    expect(text(h.sm.get(b('a'), 0))).toBe('1');
    expect(h.sm.ttl(b('t'), 1000)).toBe(4000);
    expect(h.sm.has(b('gone'), 0)).toBe(false);
    expect(() => h.sm.restoreLegacy({ meta: { index: 50, term: 3, confState: CONF }, data: b('junk') })).toThrow(
      CodecError,
    );
    expect(h.sm.appliedIndex).toBe(42);
  });
});

describe('KvStateMachine on either store', () => {
  it('computes the same digest from the same entries on SQLite and in memory', () => {
    const mem = memoryMachine();
    const disk = sqliteMachine();
    try {
      const entries: Entry[] = [];
      for (let i = 1; i <= 50; i++) {
        entries.push(
          entry(
            i,
            setCmd(`k${i % 13}`, `v${i}`, 1000 + i, {
              expiresAt: i % 3 ? 0 : 5000,
              session: { clientId: `c${i % 4}`, seq: i, lowWater: Math.max(0, i - 8) },
            }),
          ),
        );
      }
      entries.push(entry(51, { op: 'checksum', now: 2000 }));
      mem.sm.applyBatch(entries, CONF);
      disk.sm.applyBatch(entries, CONF);
      expect(mem.sm.digestAt(51)).toBe(disk.sm.digestAt(51));
    } finally {
      mem.cleanup();
      disk.cleanup();
    }
  });
});

describe('KvStateMachine on a simulated disk', () => {
  it('loses an unsynced batch whole in a crash and reaches the same state when the log replays it', () => {
    const store = new MemoryNodeStore({ autoSync: false });
    let sm = new KvStateMachine(store, 'p1');
    const entries = [1, 2, 3, 4].map((i) => entry(i, incr('n', 1000 + i, { clientId: 'c', seq: i, lowWater: 0 })));
    sm.applyBatch(entries.slice(0, 2), CONF);
    // The host's next log write is synced: it makes the apply transaction before it durable too.
    store.writeSync([{ group: 'p1', entries: [entries[0] as Entry] }], { sync: true });
    sm.applyBatch(entries.slice(2), CONF);
    const before = sm.digest();
    store.crash();
    sm = new KvStateMachine(store, 'p1');
    expect(sm.appliedIndex).toBe(2);
    expect(text(sm.get(b('n'), 0))).toBe('2');
    // Replayed from the log (with an entry the machine already applied): the same state, applied once.
    sm.applyBatch(entries.slice(1), CONF);
    expect(sm.digest()).toBe(before);
    expect(text(sm.get(b('n'), 0))).toBe('4');
  });
});
