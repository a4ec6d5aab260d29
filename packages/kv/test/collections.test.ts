import { CodecError } from '@cohort/core';
import type { KvRecord, KvView } from '@cohort/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyCollection, decodeItems, encodeItems } from '../src/collections.js';
import { digestView } from '../src/digest.js';
import { type KvCommand, type KvResult, type KvStateMachine, decodeCommand, encodeCommand } from '../src/index.js';
import { CONF, type MachineHarness, b, memoryMachine, setCmd, sqliteMachine, sqliteThreadMachine } from './harness.js';

const coll = (name: string, keys: string[], args: string[], now = 1000): KvCommand =>
  ({ op: 'collection', name, keys: keys.map(b), args: args.map(b), now }) as KvCommand;

const texts = (r: KvResult): unknown =>
  r.type === 'list'
    ? r.items?.map(texts)
    : r.type === 'bulk'
      ? Buffer.from(r.value).toString()
      : r.type === 'int'
        ? Number(r.value)
        : r;

async function transfer(from: KvStateMachine, to: KvStateMachine): Promise<void> {
  const reader = await from.openSnapshot();
  const writer = to.receiveSnapshot(reader.meta);
  let seq = 0;
  for (let c = await reader.next(256); c; c = await reader.next(256)) writer.write(seq++, c);
  reader.close();
  writer.commit();
}

describe('the collection encoding', () => {
  it('round-trips items of any bytes and length, the empty one included', () => {
    const items = [
      new Uint8Array(),
      new Uint8Array(127).fill(1),
      new Uint8Array(128).fill(0xff),
      b('x'),
      new Uint8Array(70_000),
    ];
    expect(decodeItems(encodeItems(items)).map((i) => Buffer.from(i).toString('hex'))).toEqual(
      items.map((i) => Buffer.from(i).toString('hex')),
    );
    expect(() => decodeItems(new Uint8Array([5, 1]))).toThrow(CodecError);
    expect(() => decodeItems(new Uint8Array([5, 1]))).toThrow(/truncated/);
  });

  it('digests the type of a row: the same bytes as a string are another state', () => {
    const row = { key: b('k'), value: encodeItems([b('a')]), createRevision: 1, modifyRevision: 1, version: 1 };
    const view = (rows: KvRecord[]): KvView => ({
      applied: { index: 1, term: 1, confState: CONF },
      logTime: 0,
      rows: (after) => (after === undefined ? rows : []),
      sessions: () => [],
      close: () => {},
    });
    const asString = digestView(view([row]));
    expect(digestView(view([{ ...row }]))).toBe(asString);
    expect(digestView(view([{ ...row, type: 'list' }]))).not.toBe(asString);
    expect(digestView(view([{ ...row, type: 'hash' }]))).not.toBe(digestView(view([{ ...row, type: 'list' }])));
  });

  it('codes a collection write as a log entry, and refuses an unknown one', () => {
    const cmd = coll('lmove', ['a', 'b'], ['left', 'right']);
    expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
    expect(() => decodeCommand(encodeCommand(coll('nosuch', ['a'], [])))).toThrow(CodecError);
    expect(() => decodeCommand(encodeCommand(coll('hset', ['a', 'b'], ['f', 'v'])))).toThrow(/hset command has 2 keys/);
  });
});

describe.each([
  ['MemoryNodeStore', memoryMachine],
  ['SqliteNodeStore', sqliteMachine],
  ['SqliteNodeStore (writer thread)', sqliteThreadMachine],
])('hashes and lists on %s', (_name, make) => {
  let h: MachineHarness;
  beforeEach(() => {
    h = make();
  });
  afterEach(() => h.cleanup());

  const apply = (index: number, cmd: KvCommand): KvResult => h.sm.apply(index, encodeCommand(cmd));
  const read = (sm: KvStateMachine, name: string, key: string, ...args: string[]): unknown =>
    texts(sm.read('collection', [b(key)], [b(name), ...args.map(b)], 1000));

  it('keeps a type on the row, carries it through a snapshot, and the digest covers it', async () => {
    expect(texts(apply(1, coll('hset', ['h'], ['f', '1', 'g', '2'])))).toBe(2);
    expect(texts(apply(2, coll('rpush', ['l'], ['a', 'b', 'c'])))).toBe(3);
    expect(texts(apply(3, coll('hincrby', ['h'], ['f', '41'])))).toBe(42);
    expect(texts(apply(4, coll('lpop', ['l'], ['2'])))).toEqual(['a', 'b']);
    apply(5, setCmd('s', 'v'));
    expect(h.store.kv('p1').get(b('h'))?.type).toBe('hash');
    expect(h.store.kv('p1').get(b('l'))).toMatchObject({ type: 'list', createRevision: 2, version: 2 });
    expect(read(h.sm, 'type', 's')).toBe('string');
    const peer = h.peer();
    await transfer(h.sm, peer);
    expect(peer.digest()).toBe(h.sm.digest());
    expect(read(peer, 'hgetall', 'h')).toEqual(['f', '42', 'g', '2']);
    expect(read(peer, 'lrange', 'l', '0', '-1')).toEqual(['c']);
    expect(read(peer, 'type', 'l')).toBe('list');
  });

  it('refuses to grow a collection past the value limit and changes nothing, LMOVE included', () => {
    const kv = h.store.kv('p1');
    const push = (name: 'rpush' | 'lmove', keys: string[], args: string[], index: number): KvResult =>
      h.store.transaction(() => applyCollection(kv, name, keys.map(b), args.map(b), index, 1000, 12));
    expect(push('rpush', ['a'], ['12345'], 1)).toEqual({ type: 'int', value: 1n });
    expect(push('rpush', ['a'], ['123456'], 2)).toEqual({
      type: 'error',
      message: 'ERR the list would exceed the largest value Cohort stores (12 bytes encoded)',
    });
    expect(push('rpush', ['b'], ['1234', '1234'], 3)).toEqual({ type: 'int', value: 2n });
    // Moving a's element to b would make b 16 bytes: neither list changes.
    expect(push('lmove', ['a', 'b'], ['left', 'right'], 4)).toMatchObject({ type: 'error' });
    expect(read(h.sm, 'lrange', 'a', '0', '-1')).toEqual(['12345']);
    expect(read(h.sm, 'lrange', 'b', '0', '-1')).toEqual(['1234', '1234']);
    expect(kv.get(b('a'))?.modifyRevision).toBe(1);
  });

  it('answers WRONGTYPE across types and deletes a collection it empties, keeping an expiry while it lives', () => {
    apply(1, coll('rpush', ['l'], ['a']));
    apply(2, { op: 'expire', key: b('l'), deadline: 50_000, flag: 'always', now: 1000 });
    expect(texts(apply(3, coll('rpush', ['l'], ['b'])))).toBe(2);
    expect(h.store.kv('p1').get(b('l'))?.expiresAt).toBe(50_000);
    expect(apply(4, { op: 'append', key: b('l'), value: b('x'), now: 1000 })).toMatchObject({
      message: 'WRONGTYPE Operation against a key holding the wrong kind of value',
    });
    expect(apply(5, coll('hset', ['l'], ['f', 'v']))).toMatchObject({ type: 'error' });
    expect(texts(apply(6, coll('rpop', ['l'], ['5'])))).toEqual(['b', 'a']);
    expect(h.store.kv('p1').get(b('l'))).toBeUndefined();
    // A list pushed to an expired key is a new key: no expiry, a new create revision.
    apply(7, coll('rpush', ['x'], ['a']));
    apply(8, { op: 'expire', key: b('x'), deadline: 1500, flag: 'always', now: 1000 });
    apply(9, coll('rpush', ['x'], ['b'], 2000));
    expect(h.store.kv('p1').get(b('x'))).toMatchObject({ createRevision: 9, version: 1 });
    expect(h.store.kv('p1').get(b('x'))?.expiresAt).toBeUndefined();
  });
});
