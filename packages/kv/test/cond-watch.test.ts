import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SLABS_KEPT, SLAB_BYTES, carvedKeyValue, crc32c, slabOf, slabState } from '@cohort/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvSnapshotBodyPb, KvSnapshotChunkPb } from '../src/generated/kv-command.js';
import {
  type KvCommand,
  type KvCompare,
  type KvEvent,
  type KvResult,
  type KvSession,
  WatchHub,
  type WatchedKey,
  decodeCommand,
  decodeResponse,
  encodeCommand,
  encodeResponse,
  eventsFromEntries,
} from '../src/index.js';
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

const put = (key: string, value: string, compare: KvCompare = { kind: 'always' }, now = 1000): KvCommand => ({
  op: 'cond',
  key: b(key),
  compare,
  action: { kind: 'put', value: b(value), expiresAt: 0 },
  now,
});
const del = (key: string, compare: KvCompare = { kind: 'always' }): KvCommand => ({
  op: 'cond',
  key: b(key),
  compare,
  action: { kind: 'del' },
  now: 1000,
});

describe.each([
  ['MemoryNodeStore', memoryMachine],
  ['SqliteNodeStore', sqliteMachine],
])('conditional writes on %s', (_name, make) => {
  let h: MachineHarness;
  beforeEach(() => {
    h = make();
  });
  afterEach(() => h.cleanup());

  const apply = (index: number, cmd: KvCommand): Extract<KvResult, { type: 'cond' }> => {
    const r = h.sm.apply(index, encodeCommand(cmd));
    if (r.type !== 'cond') throw new Error(`expected a cond result, got ${r.type}`);
    return r;
  };

  it('puts only when the key is absent, and counts versions from the create revision', () => {
    const first = apply(1, put('k', 'a', { kind: 'absent' }));
    expect(first).toMatchObject({
      succeeded: true,
      revision: 1,
      record: { createRevision: 1, modifyRevision: 1, version: 1 },
    });
    const again = apply(2, put('k', 'b', { kind: 'absent' }));
    expect(again.succeeded).toBe(false);
    expect(text(again.record?.value)).toBe('a');
    expect(apply(3, put('k', 'c')).record).toMatchObject({ createRevision: 1, modifyRevision: 3, version: 2 });
  });

  it("compares with '!=', '<' and '>' as etcd does: an absent key has revisions 0 and no value", () => {
    expect(apply(1, put('k', 'x', { kind: 'value', value: b('a'), op: '!=' })).succeeded).toBe(false);
    expect(apply(2, put('k', 'x', { kind: 'present' })).succeeded).toBe(false);
    expect(apply(3, put('k', 'm', { kind: 'createRevision', value: 1, op: '<' })).succeeded).toBe(true);
    // k: created at 3, value m, version 1.
    expect(apply(4, put('k', 'n', { kind: 'version', value: 0, op: '>' })).succeeded).toBe(true);
    expect(apply(5, put('k', 'o', { kind: 'value', value: b('n'), op: '<' })).succeeded).toBe(false);
    expect(apply(6, put('k', 'o', { kind: 'value', value: b('m'), op: '>' })).succeeded).toBe(true);
    expect(apply(7, put('k', 'p', { kind: 'modRevision', value: 6, op: '!=' })).succeeded).toBe(false);
    expect(apply(8, put('k', 'p', { kind: 'createRevision', value: 3 })).record).toMatchObject({
      createRevision: 3,
      modifyRevision: 8,
      version: 4,
    });
    expect(apply(9, del('k', { kind: 'present' })).succeeded).toBe(true);
    expect(apply(10, put('k', 'q', { kind: 'absent' })).succeeded).toBe(true);
  });

  it('swaps on mod revision, version and value, and answers the current record when the comparison fails', () => {
    apply(1, put('k', 'a'));
    const stale = apply(2, put('k', 'x', { kind: 'modRevision', value: 7 }));
    expect(stale).toMatchObject({ succeeded: false, revision: 2, record: { modifyRevision: 1, version: 1 } });
    expect(text(h.sm.get(b('k'), 0))).toBe('a');
    expect(apply(3, put('k', 'b', { kind: 'modRevision', value: 1 })).succeeded).toBe(true);
    expect(apply(4, put('k', 'x', { kind: 'version', value: 1 })).succeeded).toBe(false);
    expect(apply(5, put('k', 'c', { kind: 'version', value: 2 })).record).toMatchObject({ version: 3 });
    expect(apply(6, put('k', 'x', { kind: 'value', value: b('b') })).succeeded).toBe(false);
    expect(apply(7, put('k', 'd', { kind: 'value', value: b('c') })).succeeded).toBe(true);
    expect(text(h.sm.get(b('k'), 0))).toBe('d');
    // A missing key has mod revision and version 0, as in etcd; its value never matches.
    expect(apply(8, put('n', 'v', { kind: 'value', value: b('') })).succeeded).toBe(false);
    expect(apply(9, put('n', 'v', { kind: 'version', value: 0 })).succeeded).toBe(true);
  });

  it('deletes conditionally, answering the deleted record', () => {
    apply(1, put('k', 'a'));
    expect(apply(2, del('k', { kind: 'modRevision', value: 9 }))).toMatchObject({
      succeeded: false,
      record: { version: 1 },
    });
    expect(h.sm.get(b('k'), 0)).toBeDefined();
    const gone = apply(3, del('k', { kind: 'version', value: 1 }));
    expect(gone).toMatchObject({ succeeded: true, record: { modifyRevision: 1 } });
    expect(h.sm.get(b('k'), 0)).toBeUndefined();
    expect(apply(4, del('k'))).toEqual({ type: 'cond', succeeded: true, revision: 4 });
    // Written again, the key starts a new life.
    expect(apply(5, put('k', 'b')).record).toMatchObject({ createRevision: 5, version: 1 });
  });

  it('treats an expired key as absent', () => {
    h.sm.apply(1, encodeCommand(setCmd('k', 'a', 1000, { expiresAt: 1500 })));
    expect(apply(2, put('k', 'b', { kind: 'absent' }, 2000)).succeeded).toBe(true);
  });

  it('ranges over keys in byte order with a limit, skipping expired keys', () => {
    for (const [i, k] of ['a/1', 'a/2', 'a/3', 'b'].entries()) apply(i + 1, put(k, k));
    h.sm.apply(5, encodeCommand(setCmd('a/0', 'gone', 1000, { expiresAt: 1500 })));
    const page = h.sm.range(b('a/'), b('a0'), 2, 2000);
    expect(page.records.map((r) => text(r.key))).toEqual(['a/1', 'a/2']);
    expect(page.more).toBe(true);
    const rest = h.sm.range(b('a/2\u0000'), b('a0'), 2, 2000);
    expect(rest.records.map((r) => text(r.key))).toEqual(['a/3']);
    expect(rest.more).toBe(false);
    expect(h.sm.range(b(''), undefined, 0, 2000).records).toHaveLength(4);
  });

  it('reads a range of one key, [k, k + 0x00), as that key alone: present, absent, expired, or a neighbour', () => {
    for (const [i, k] of ['a', 'a/1', 'a\u0000', 'b'].entries()) apply(i + 1, put(k, k));
    h.sm.apply(5, encodeCommand(setCmd('c', 'gone', 1000, { expiresAt: 1500 })));
    const one = (k: string) => h.sm.range(b(k), b(`${k}\u0000`), 1, 2000);
    expect(one('a')).toEqual({ records: [expect.objectContaining({ key: b('a'), value: b('a') })], more: false });
    expect(one('a').records[0]).toMatchObject({ createRevision: 1, modifyRevision: 1, version: 1 });
    expect(one('a/').records).toEqual([]);
    expect(one('c').records).toEqual([]);
    expect(one('zz').records).toEqual([]);
    // The same answers as the scan of a wider range cut to the key.
    expect(h.sm.range(b('a'), b('a\u0000\u0000'), 0, 2000).records.map((r) => text(r.key))).toEqual(['a', 'a\u0000']);
    expect(one('a\u0000').records.map((r) => text(r.key))).toEqual(['a\u0000']);
  });

  it('tells its listener when a snapshot replaces the partition', async () => {
    const resets: number[] = [];
    const peer = make();
    peer.sm.setEventListener({ applied: () => undefined, reset: (index) => resets.push(index) });
    apply(1, put('k', 'a'));
    const reader = await h.sm.openSnapshot();
    const writer = peer.sm.receiveSnapshot(reader.meta);
    for (let c = await reader.next(1 << 20), seq = 0; c; c = await reader.next(1 << 20)) writer.write(seq++, c);
    reader.close();
    writer.commit();
    expect(resets).toEqual([1]);
    peer.cleanup();
  });

  it('tells its listener of every change after each batch', () => {
    const seen: KvEvent[] = [];
    let applied = 0;
    h.sm.setEventListener({
      applied: (events, index) => {
        seen.push(...events);
        applied = index;
      },
      reset: () => undefined,
    });
    h.sm.applyBatch(
      [entry(1, put('k', 'a')), entry(2, setCmd('j', 'x')), entry(3, del('k')), entry(4, del('k'))],
      CONF,
    );
    expect(applied).toBe(4);
    expect(seen.map((e) => [e.type, text(e.key), e.revision, e.record?.version])).toEqual([
      ['put', 'k', 1, 1],
      ['put', 'j', 2, 1],
      ['delete', 'k', 3, undefined],
    ]);
  });
});

describe('cond commands and results on the wire', () => {
  it('round-trips every comparison and both actions', () => {
    for (const cmd of [
      put('k', 'v'),
      put('k', 'v', { kind: 'absent' }),
      put('k', 'v', { kind: 'modRevision', value: 12 }),
      put('k', 'v', { kind: 'version', value: 3 }),
      del('k', { kind: 'value', value: b('old') }),
      put('k', 'v', { kind: 'present' }),
      put('k', 'v', { kind: 'createRevision', value: 4, op: '<' }),
      put('k', 'v', { kind: 'modRevision', value: 12, op: '!=' }),
      del('k', { kind: 'value', value: b('old'), op: '>' }),
    ]) {
      expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
    }
    const res: KvResult = {
      type: 'cond',
      succeeded: false,
      revision: 9,
      record: { key: b('k'), value: b('v'), createRevision: 2, modifyRevision: 5, version: 3, expiresAt: 77 },
    };
    expect(decodeResponse(encodeResponse(res))).toEqual(res);
  });
});

describe('snapshot formats', () => {
  it('installs a format 2 snapshot (rows without a version) at version 1, and refuses a newer format', () => {
    const h = memoryMachine();
    const body = KvSnapshotBodyPb.encode({
      rows: [
        { key: b('k'), value: b('v'), createRevision: 3n, modifyRevision: 4n, expiresAt: 0n, version: 0n, type: 0 },
      ],
      sessions: [],
      logTime: 10n,
    });
    const chunk = KvSnapshotChunkPb.encode({ version: 2, body, crc: crc32c(body) });
    const meta = { index: 4, term: 1, confState: CONF };
    const w = h.sm.receiveSnapshot(meta);
    w.write(0, chunk);
    w.commit();
    expect(h.store.kv('p1').get(b('k'))).toMatchObject({ createRevision: 3, modifyRevision: 4, version: 1 });
    const newer = KvSnapshotChunkPb.encode({ version: 5, body, crc: crc32c(body) });
    const w2 = h.sm.receiveSnapshot(meta);
    expect(() => w2.write(0, newer)).toThrow('snapshot format 5 is newer than this build reads (4); upgrade the node');
    w2.abort();
    h.cleanup();
  });
});

describe('events decoded from log entries', () => {
  it('tells puts of unconditional writes, skips other keys, and gives up on writes whose outcome needs the state', () => {
    const entries = [
      entry(1, setCmd('w/a', '1')),
      entry(2, setCmd('x', '2')),
      entry(3, { op: 'mset', keys: [b('w/b'), b('y')], values: [b('3'), b('4')], now: 1000 }),
      entry(4, put('y', 'cas')),
      entry(5, put('w/c', 'plain')),
    ];
    const events = eventsFromEntries(entries, { prefix: b('w/') });
    expect(events?.map((e) => [e.type, text(e.key), e.revision, text(e.value)])).toEqual([
      ['put', 'w/a', 1, '1'],
      ['put', 'w/b', 3, '3'],
      ['put', 'w/c', 5, 'plain'],
    ]);
    expect(eventsFromEntries([...entries, entry(6, del('w/a'))], { prefix: b('w/') })).toBeUndefined();
    expect(
      eventsFromEntries([entry(1, put('w/a', 'v', { kind: 'version', value: 1 }))], { key: b('w/a') }),
    ).toBeUndefined();
    expect(
      eventsFromEntries([entry(1, setCmd('w/a', '1', 1000, { condition: 'nx' }))], { key: b('w/a') }),
    ).toBeUndefined();
    expect(eventsFromEntries([entry(1, setCmd('w/a', '1'))], { key: b('other') })).toEqual([]);
  });

  it('tells RENAME, COPY and EXEC apart by the keys they touch, and never tells FLUSHDB', () => {
    const filter = { prefix: b('w/') };
    const rename: KvCommand = { op: 'rename', key: b('x'), dest: b('w/x'), nx: false, now: 1000 };
    const copy: KvCommand = { op: 'copy', key: b('x'), dest: b('y'), replace: true, now: 1000 };
    const exec = (key: string): KvCommand => ({
      op: 'exec',
      ops: [{ op: 'append', key: b(key), value: b('1'), now: 1000 }],
      watch: [],
      now: 1000,
    });
    // The destination matches: what it holds now depends on the state the entry applied to.
    expect(eventsFromEntries([entry(1, rename)], filter)).toBeUndefined();
    expect(eventsFromEntries([entry(1, copy)], filter)).toEqual([]);
    expect(eventsFromEntries([entry(1, exec('other'))], filter)).toEqual([]);
    expect(eventsFromEntries([entry(1, exec('w/a'))], filter)).toBeUndefined();
    expect(eventsFromEntries([entry(1, { op: 'flush', now: 1000 })], { key: b('nothing-here') })).toBeUndefined();
  });

  it('tells the puts of an EXEC of plain puts (concurrent HTTP puts), unless it watches keys, holds a conditional write of a matching key or is in a session', () => {
    const filter = { prefix: b('w/') };
    const merged = (ops: KvCommand[], more: { watch?: WatchedKey[]; session?: KvSession } = {}): KvCommand => ({
      op: 'exec',
      ops,
      watch: more.watch ?? [],
      now: 1000,
      ...(more.session ? { session: more.session } : {}),
    });
    const plain = [put('w/a', '1'), put('x', '2'), put('w/b', '3'), setCmd('w/c', '4')];
    expect(
      eventsFromEntries([entry(1, merged(plain)), entry(2, put('w/a', '5'))], filter)?.map((e) => [
        text(e.key),
        e.revision,
        text(e.value),
      ]),
    ).toEqual([
      ['w/a', 1, '1'],
      ['w/b', 1, '3'],
      ['w/c', 1, '4'],
      ['w/a', 2, '5'],
    ]);
    // A compare-and-swap of another key beside them changes nothing watched.
    expect(eventsFromEntries([entry(1, merged([...plain, put('y', 'v', { kind: 'absent' })]))], filter)).toHaveLength(
      3,
    );
    expect(
      eventsFromEntries([entry(1, merged([...plain, put('w/d', 'v', { kind: 'absent' })]))], filter),
    ).toBeUndefined();
    expect(eventsFromEntries([entry(1, merged([...plain, del('w/d')]))], filter)).toBeUndefined();
    expect(
      eventsFromEntries([entry(1, merged(plain, { watch: [{ key: b('x'), revision: 0 }] }))], filter),
    ).toBeUndefined();
    expect(
      eventsFromEntries([entry(1, merged(plain, { session: { clientId: 'c', seq: 1, lowWater: 0 } }))], filter),
    ).toBeUndefined();
    expect(
      eventsFromEntries(
        [entry(1, merged([put('x', '1')], { session: { clientId: 'c', seq: 1, lowWater: 0 } }))],
        filter,
      ),
    ).toEqual([]);
  });
});

describe('WatchHub', () => {
  const ev = (key: string, revision: number): KvEvent => ({ type: 'put', key: b(key), revision });

  it('replays held events from a revision, then delivers live ones matching the filter', () => {
    const hub = new WatchHub({ applied: 0 });
    hub.applied([ev('a/1', 1), ev('b', 2), ev('a/2', 3)], 3);
    const got: number[] = [];
    const w = hub.watch(
      { prefix: b('a/') },
      2,
      (es) => got.push(...es.map((e) => e.revision)),
      () => undefined,
    );
    expect('cancel' in w).toBe(true);
    hub.applied([ev('a/3', 4), ev('c', 5)], 5);
    expect(got).toEqual([3, 4]);
    if ('cancel' in w) w.cancel();
    hub.applied([ev('a/4', 6)], 6);
    expect(got).toEqual([3, 4]);
  });

  it('never sends a watch a revision before its start, even one applied after it began (a replica re-applying after a restart)', () => {
    // Restarted with revision 5 applied durably; the client had seen up to 8 (applied, not yet durable, before the crash).
    const hub = new WatchHub({ applied: 5 });
    const got: number[] = [];
    hub.watch(
      { prefix: b('w/') },
      9,
      (es) => got.push(...es.map((e) => e.revision)),
      () => undefined,
    );
    hub.applied([ev('w/1', 6), ev('w/1', 8)], 8);
    hub.applied([ev('w/2', 9), ev('w/3', 10)], 10);
    expect(got).toEqual([9, 10]);
  });

  it('drops a watcher that throws, and delivers to the others', () => {
    const hub = new WatchHub({ applied: 0 });
    const got: number[] = [];
    hub.watch(
      { key: b('k') },
      1,
      () => {
        throw new Error('connection gone');
      },
      () => undefined,
    );
    hub.watch(
      { key: b('k') },
      1,
      (es) => got.push(...es.map((e) => e.revision)),
      () => undefined,
    );
    hub.applied([ev('k', 1)], 1);
    hub.applied([ev('k', 2)], 2);
    expect(got).toEqual([1, 2]);
    expect(hub.watching).toBe(1);
  });

  it('answers the oldest revision it holds for a watch that starts before it', () => {
    const hub = new WatchHub({ applied: 10, capacity: 2 });
    expect(
      hub.watch(
        { key: b('k') },
        5,
        () => undefined,
        () => undefined,
      ),
    ).toEqual({ compacted: true, oldest: 11 });
    hub.applied([ev('k', 11), ev('k', 12), ev('k', 13)], 13);
    expect(hub.oldest).toBe(12);
    expect(
      hub.watch(
        { key: b('k') },
        11,
        () => undefined,
        () => undefined,
      ),
    ).toEqual({ compacted: true, oldest: 12 });
    let resetAt = 0;
    hub.watch(
      { key: b('k') },
      12,
      () => undefined,
      (oldest) => {
        resetAt = oldest;
      },
    );
    hub.reset(40);
    expect(resetAt).toBe(41);
    expect(hub.oldest).toBe(41);
  });

  it('bounds the bytes its history holds, dropping whole revisions', () => {
    const hub = new WatchHub({ applied: 0, capacityBytes: 2 * (64 + 1 + 100) });
    const big = (key: string, revision: number): KvEvent => ({
      type: 'put',
      key: b(key),
      revision,
      value: new Uint8Array(100),
    });
    hub.applied([big('a', 1), big('b', 2), big('c', 2), big('d', 3)], 3);
    // Four events of 165 bytes do not fit in 330: a and b go, and c with b, its revision.
    expect(hub.oldest).toBe(3);
  });

  it('lets go of the events it dropped', async () => {
    // The collector, in process: a flag set at run time is read by contexts made after it.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const hub = new WatchHub({ applied: 0, capacity: 100 });
    // 4,000 events in batches of 10: the history drops all but the last 100, and its array is cut only
    // once the dropped slots are more than 4,096 and half of it, so without letting go it would hold them all.
    // Made in a function of its own: this async one would keep its last event in a saved register.
    const feed = (): WeakRef<KvEvent>[] => {
      const refs: WeakRef<KvEvent>[] = [];
      for (let r = 1; r <= 4000; r += 10) {
        const batch = Array.from({ length: 10 }, (_, i) => ev('k', r + i));
        if (r <= 3000) for (const e of batch) refs.push(new WeakRef(e));
        hub.applied(batch, r + 9);
      }
      return refs;
    };
    const dropped = feed();
    expect(hub.oldest).toBe(3901);
    // A WeakRef's target is kept until the end of the turn that made or read it: the collection runs in a later one.
    for (let i = 0; i < 2; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      gc();
    }
    expect(dropped.flatMap((w, i) => (w.deref() !== undefined ? [i] : []))).toEqual([]);
  });

  it("swaps the records it holds for copies of their own once their bytes' slab is stale, without a write of its own", async () => {
    const hub = new WatchHub({ applied: 0 });
    const carved = (key: string, revision: number): KvEvent => {
      const [k, v] = carvedKeyValue(b(key), b(`v${revision}`));
      return {
        type: 'put',
        key: k,
        revision,
        record: { key: k, value: v, createRevision: 1, modifyRevision: revision, version: revision },
      };
    };
    const slabsLater = (n: number): void => {
      const big = new Uint8Array(SLAB_BYTES / 8 - 1);
      const first = slabOf(carvedKeyValue(big, new Uint8Array(0))[0]);
      while (slabOf(carvedKeyValue(big, new Uint8Array(0))[0]) < first + n) {}
    };
    const old = [carved('a', 1), carved('b', 1)];
    hub.applied(old, 1);
    slabsLater(SLABS_KEPT / 2);
    hub.applied([{ type: 'delete', key: b('c'), revision: 2 }, carved('d', 3)], 3);
    hub.applied([carved('e', 4)], 4);
    // Other partitions' writes: the history is told to look in a microtask.
    slabsLater(SLABS_KEPT / 2);
    await new Promise((resolve) => setImmediate(resolve));
    const held: KvEvent[] = [];
    hub.watch(
      { prefix: b('') },
      1,
      (events) => held.push(...events),
      () => {},
    );
    expect(held.map((e) => [text(e.key), e.revision, e.record && text(e.record.value)])).toEqual([
      ['a', 1, 'v1'],
      ['b', 1, 'v1'],
      ['c', 2, undefined],
      ['d', 3, 'v3'],
      ['e', 4, 'v4'],
    ]);
    // The first two were carved SLABS_KEPT slabs ago: copied out, the events given out untouched.
    expect(held.map((e) => slabState(e.record?.key ?? e.key))).toEqual(['own', 'own', 'own', 'fresh', 'fresh']);
    expect(held.map((e) => e.record && slabState(e.record.value))).toEqual(['own', 'own', undefined, 'fresh', 'fresh']);
    expect(held[0]?.key).toBe(held[0]?.record?.key);
    expect(held[0]?.record).toEqual(old[0]?.record);
    expect(slabState(old[0]?.key as Uint8Array)).toBe('stale');
  });
});

describe.each([
  ['MemoryNodeStore', memoryMachine],
  ['SqliteNodeStore', sqliteMachine],
  ['SqliteNodeStore (writer thread)', sqliteThreadMachine],
])('the events of plain SETs on %s', (_name, make) => {
  it('carry the create revision and version each SET left, read before or after its write committed', () => {
    const h = make();
    try {
      const seen: KvEvent[] = [];
      h.sm.setEventListener({ applied: (events) => seen.push(...events), reset: () => undefined });
      // Key k: written, expired (its row still there), written again twice; j: one write, read at once.
      h.sm.applyBatch([entry(1, setCmd('k', 'a', 1000, { expiresAt: 2000 })), entry(2, setCmd('k', 'b', 1500))], CONF);
      expect(seen.map((e) => [e.record?.createRevision, e.record?.version])).toEqual([
        [1, 1],
        [1, 2],
      ]);
      h.sm.applyBatch([entry(3, setCmd('k', 'c', 1600, { expiresAt: 2000 }))], CONF);
      h.sm.applyBatch([entry(4, setCmd('k', 'd', 2500)), entry(5, setCmd('k', 'e', 2600))], CONF);
      h.sm.applyBatch([entry(6, setCmd('j', 'x', 2600))], CONF);
      if ('flush' in h.store) (h.store as { flush(): void }).flush();
      expect(seen.map((e) => [text(e.key), e.revision, e.record?.createRevision, e.record?.version])).toEqual([
        ['k', 1, 1, 1],
        ['k', 2, 1, 2],
        ['k', 3, 1, 3],
        // Expired at 2000: the SET at 2500 starts the key over, as Redis' would after dropping it.
        ['k', 4, 4, 1],
        ['k', 5, 4, 2],
        ['j', 6, 6, 1],
      ]);
      expect(h.sm.size).toBe(2);
    } finally {
      h.cleanup();
    }
  });

  it('and of plain conditional puts (HTTP), alone or merged in an EXEC: answers and events carry what each left', () => {
    const h = make();
    try {
      const seen: KvEvent[] = [];
      h.sm.setEventListener({ applied: (events) => seen.push(...events), reset: () => undefined });
      const plain = (key: string, value: string, now: number, expiresAt = 0): KvCommand => ({
        op: 'cond',
        key: b(key),
        compare: { kind: 'always' },
        action: { kind: 'put', value: b(value), expiresAt },
        now,
      });
      const exec = (now: number, ...ops: KvCommand[]): KvCommand => ({ op: 'exec', ops, watch: [], now });
      const answers: KvResult[] = [];
      const applyAll = (...entries: ReturnType<typeof entry>[]): void => {
        for (const out of h.sm.applyBatch(entries, CONF)) {
          if (!out?.ok) throw new Error(`an entry failed: ${String(out && !out.ok && out.error)}`);
          answers.push(out.value);
        }
      };
      const records = (r: KvResult): [number | undefined, number | undefined, number | undefined][] => {
        const each = r.type === 'list' ? (r.items ?? []) : [r];
        return each.map((a) => {
          if (a.type !== 'cond' || !a.succeeded) throw new Error(`not a put's answer: ${JSON.stringify(a)}`);
          return [a.record?.modifyRevision, a.record?.createRevision, a.record?.version];
        });
      };
      applyAll(
        entry(1, exec(1000, plain('k', 'a', 1000, 2000), plain('j', 'x', 1000))),
        entry(2, plain('k', 'b', 1500, 2000)),
      );
      // Read before the writes committed.
      expect(answers.map(records)).toEqual([
        [
          [1, 1, 1],
          [1, 1, 1],
        ],
        [[2, 1, 2]],
      ]);
      // k expired at 2000 (its row still there): the put at 2500 starts it over.
      applyAll(entry(3, plain('k', 'c', 2500)));
      applyAll(entry(4, exec(2600, plain('k', 'd', 2600), plain('j', 'y', 2600))), entry(5, plain('i', 'z', 2600)));
      if ('flush' in h.store) (h.store as { flush(): void }).flush();
      expect(answers.slice(2).map(records)).toEqual([
        [[3, 3, 1]],
        [
          [4, 3, 2],
          [4, 1, 2],
        ],
        [[5, 5, 1]],
      ]);
      expect(seen.map((e) => [text(e.key), e.revision, e.record?.createRevision, e.record?.version])).toEqual([
        ['k', 1, 1, 1],
        ['j', 1, 1, 1],
        ['k', 2, 1, 2],
        ['k', 3, 3, 1],
        ['k', 4, 3, 2],
        ['j', 4, 1, 2],
        ['i', 5, 5, 1],
      ]);
      expect(h.sm.size).toBe(3);
    } finally {
      h.cleanup();
    }
  });
});
