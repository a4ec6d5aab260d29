import {
  CompactedError,
  type Entry,
  ProposalDroppedError,
  StorageError,
  UnavailableError,
  emptyConfState,
} from '@cohort/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DurableNodeStore } from '../src/types.js';
import { type StoreHarness, ent, ents, memoryHarness, sqliteHarness, sqliteThreadHarness } from './harness.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const plain = (es: Entry[]): unknown[] => es.map((e) => ({ ...e, data: text(e.data) }));
const conf = (voters: string[]) => ({ ...emptyConfState(), voters });

describe.each([
  ['MemoryNodeStore', memoryHarness],
  ['SqliteNodeStore', sqliteHarness],
  ['SqliteNodeStore (writer thread)', sqliteThreadHarness],
])('%s honours the node store contract', (_name, make) => {
  let h: StoreHarness;
  let store: DurableNodeStore;
  beforeEach(() => {
    h = make();
    store = h.open();
  });
  afterEach(() => {
    store.close();
    h.cleanup();
  });

  it('starts a new group empty', () => {
    const g = store.group('p1');
    expect(g.initialState().hardState).toEqual({ term: 0, vote: '', commit: 0 });
    expect(g.firstIndex()).toBe(1);
    expect(g.lastIndex()).toBe(0);
    expect(g.term(0)).toBe(0);
    expect(g.entries(1, 1, Number.MAX_SAFE_INTEGER)).toEqual([]);
    expect(g.snapshot().meta.index).toBe(0);
  });

  it('reads back appended entries, terms and bounds, also after a restart', () => {
    store.writeSync([
      { group: 'p1', entries: [...ents(1, 3, 1), ...ents(4, 5, 2)], hardState: { term: 2, vote: 'n1', commit: 3 } },
    ]);
    for (let round = 0; round < 2; round++) {
      const g = store.group('p1');
      expect(g.firstIndex()).toBe(1);
      expect(g.lastIndex()).toBe(5);
      expect(g.term(3)).toBe(1);
      expect(g.term(5)).toBe(2);
      expect(plain(g.entries(2, 5, Number.MAX_SAFE_INTEGER))).toEqual(plain([ent(2, 1), ent(3, 1), ent(4, 2)]));
      expect(g.initialState().hardState).toEqual({ term: 2, vote: 'n1', commit: 3 });
      store = h.reopen(store);
    }
  });

  it('limits entries by maxBytes but always returns the first', () => {
    store.writeSync([{ group: 'p1', entries: ents(1, 10, 1, 100) }]);
    const g = store.group('p1');
    expect(g.entries(1, 11, 0)).toHaveLength(1);
    expect(g.entries(1, 11, 250)).toHaveLength(2);
    expect(g.entries(1, 11, 1000)).toHaveLength(10);
  });

  it('reports compacted and unavailable positions with typed errors', () => {
    store.writeSync([{ group: 'p1', entries: ents(1, 5, 1) }]);
    store.saveSnapshotSync('p1', { meta: { index: 3, term: 1, confState: conf(['n1']) }, data: bytes('s') }, 3);
    const g = store.group('p1');
    expect(() => g.entries(3, 5, 100)).toThrow(CompactedError);
    expect(() => g.term(2)).toThrow(CompactedError);
    expect(g.term(3)).toBe(1);
    expect(() => g.entries(4, 7, 100)).toThrow(UnavailableError);
    expect(() => g.term(6)).toThrow(UnavailableError);
  });

  it('truncates a conflicting suffix when an entry lands at an existing index', () => {
    store.writeSync([{ group: 'p1', entries: ents(1, 5, 1) }]);
    store.writeSync([{ group: 'p1', entries: [ent(3, 2, 'x3'), ent(4, 2, 'x4')] }]);
    store = h.reopen(store);
    const g = store.group('p1');
    expect(g.lastIndex()).toBe(4);
    expect(plain(g.entries(1, 5, 1 << 20))).toEqual(plain([ent(1, 1), ent(2, 1), ent(3, 2, 'x3'), ent(4, 2, 'x4')]));
  });

  it('refuses holes and non-contiguous batches, changing nothing in the batch', () => {
    store.writeSync([{ group: 'p1', entries: ents(1, 2, 1) }]);
    expect(() =>
      store.writeSync([
        { group: 'p2', entries: ents(1, 1, 1) },
        { group: 'p1', entries: ents(4, 4, 1) },
      ]),
    ).toThrow(StorageError);
    expect(() => store.writeSync([{ group: 'p1', entries: [ent(3, 1), ent(5, 1)] }])).toThrow(/not contiguous/);
    expect(store.group('p2').lastIndex()).toBe(0);
    expect(store.group('p1').lastIndex()).toBe(2);
  });

  it('refuses a term that goes back and a second vote in one term (Raft §5.1, §5.2)', () => {
    store.writeSync([{ group: 'p1', hardState: { term: 3, vote: 'n2', commit: 0 } }]);
    expect(() => store.writeSync([{ group: 'p1', hardState: { term: 2, vote: '', commit: 0 } }])).toThrow(
      /term would go back/,
    );
    expect(() => store.writeSync([{ group: 'p1', hardState: { term: 3, vote: 'n3', commit: 0 } }])).toThrow(
      /vote in term 3/,
    );
    store.writeSync([{ group: 'p1', hardState: { term: 4, vote: 'n3', commit: 0 } }]);
    store = h.reopen(store);
    expect(store.group('p1').initialState().hardState).toEqual({ term: 4, vote: 'n3', commit: 0 });
  });

  it('writes many groups in one batch and lists them', () => {
    store.writeSync([
      { group: 'meta', entries: ents(1, 2, 1), hardState: { term: 1, vote: 'n1', commit: 1 } },
      { group: 'p7', entries: ents(1, 4, 1) },
    ]);
    store = h.reopen(store);
    expect(store.groups()).toEqual(['meta', 'p7']);
    expect(store.group('meta').lastIndex()).toBe(2);
    expect(store.group('p7').lastIndex()).toBe(4);
  });

  it('records a bootstrap snapshot at index 0 carrying the membership', () => {
    store.writeSync([
      {
        group: 'p1',
        snapshot: { meta: { index: 0, term: 0, confState: conf(['a', 'b', 'c']) }, data: new Uint8Array() },
      },
    ]);
    store = h.reopen(store);
    expect(store.group('p1').initialState().confState.voters).toEqual(['a', 'b', 'c']);
    expect(store.group('p1').lastIndex()).toBe(0);
  });

  it('replaces the log with a snapshot from the leader, then appends after it', () => {
    store.writeSync([{ group: 'p1', entries: ents(1, 4, 1) }]);
    store.writeSync([
      {
        group: 'p1',
        snapshot: { meta: { index: 10, term: 3, confState: conf(['n1', 'n2']) }, data: bytes('state@10') },
        entries: ents(11, 12, 3),
        hardState: { term: 3, vote: '', commit: 10 },
      },
    ]);
    store = h.reopen(store);
    const g = store.group('p1');
    expect(g.firstIndex()).toBe(11);
    expect(g.lastIndex()).toBe(12);
    expect(g.term(10)).toBe(3);
    expect(text(g.snapshot().data)).toBe('state@10');
    expect(g.initialState().confState.voters).toEqual(['n1', 'n2']);
    expect(() =>
      store.writeSync([
        { group: 'p1', snapshot: { meta: { index: 5, term: 1, confState: conf([]) }, data: bytes('') } },
      ]),
    ).toThrow(StorageError);
  });

  it('saves an application snapshot and compacts only up to the margin', () => {
    store.writeSync([{ group: 'p1', entries: ents(1, 20, 1) }]);
    store.saveSnapshotSync('p1', { meta: { index: 15, term: 1, confState: conf(['n1']) }, data: bytes('sm@15') }, 10);
    store = h.reopen(store);
    const g = store.group('p1');
    expect(g.firstIndex()).toBe(11);
    expect(g.term(10)).toBe(1);
    expect(g.snapshot().meta.index).toBe(15);
    expect(text(g.snapshot().data)).toBe('sm@15');
    expect(g.entries(11, 21, 1 << 20)).toHaveLength(10);
    expect(() =>
      store.saveSnapshotSync('p1', { meta: { index: 16, term: 1, confState: conf([]) }, data: bytes('') }, 17),
    ).toThrow(/past the snapshot/);
  });

  it('streams a large snapshot in and out chunk by chunk', () => {
    store.close();
    store = h.open({ chunkBytes: 1000 });
    store.writeSync([{ group: 'p1', entries: ents(1, 3, 1) }]);
    const sink = store.beginSnapshot('p1', { index: 3, term: 1, confState: conf(['n1']) });
    const expected = new Uint8Array(10_500);
    for (let i = 0; i < expected.length; i++) expected[i] = (i * 7) & 0xff;
    for (let off = 0; off < expected.length; off += 333) sink.write(expected.subarray(off, off + 333));
    sink.finish(3);
    store = h.reopen(store);
    const src = store.openSnapshot('p1');
    expect(src?.size).toBe(10_500);
    const chunks = [...(src?.chunks() ?? [])];
    expect(chunks).toHaveLength(11);
    expect(Math.max(...chunks.map((c) => c.length))).toBe(1000);
    expect(Buffer.concat(chunks).equals(Buffer.from(expected))).toBe(true);
    expect(Buffer.from(store.group('p1').snapshot().data).equals(Buffer.from(expected))).toBe(true);
  });

  it('discards an aborted snapshot', () => {
    store.writeSync([{ group: 'p1', entries: ents(1, 3, 1) }]);
    const sink = store.beginSnapshot('p1', { index: 2, term: 1, confState: conf([]) });
    sink.write(bytes('partial'));
    sink.abort();
    expect(() => sink.finish(2)).toThrow(StorageError);
    expect(store.openSnapshot('p1')).toBeUndefined();
    expect(store.group('p1').firstIndex()).toBe(1);
  });

  it('lets a snapshot from the leader win over an application snapshot still streaming in', () => {
    store.writeSync([{ group: 'p1', entries: ents(1, 5, 1) }]);
    const sink = store.beginSnapshot('p1', { index: 3, term: 1, confState: conf(['n1']) });
    sink.write(bytes('app state'));
    store.writeSync([
      { group: 'p1', snapshot: { meta: { index: 10, term: 2, confState: conf(['n1']) }, data: bytes('leader') } },
    ]);
    expect(() => sink.finish(3)).toThrow(StorageError);
    store = h.reopen(store);
    expect(store.group('p1').snapshot().meta.index).toBe(10);
    expect(text(store.group('p1').snapshot().data)).toBe('leader');
  });

  it('compacts explicitly, never past the snapshot', () => {
    store.writeSync([{ group: 'p1', entries: ents(1, 10, 2) }]);
    store.saveSnapshotSync('p1', { meta: { index: 8, term: 2, confState: conf([]) }, data: bytes('s') }, 2);
    store.compact('p1', 6);
    expect(() => store.compact('p1', 9)).toThrow(/past the snapshot/);
    store = h.reopen(store);
    expect(store.group('p1').firstIndex()).toBe(7);
    expect(store.group('p1').term(6)).toBe(2);
  });

  it('says when to snapshot and refuses proposals past the max log size', () => {
    store.close();
    store = h.open({ limits: { snapshotEntries: 5, snapshotBytes: 1000, maxLogBytes: 2000 } });
    store.writeSync([{ group: 'p1', entries: ents(1, 4, 1, 100) }]);
    expect(store.stats('p1')).toMatchObject({ entries: 4, bytes: 400, shouldSnapshot: false, overLimit: false });
    store.writeSync([{ group: 'p1', entries: ents(5, 5, 1, 100) }]);
    expect(store.stats('p1').shouldSnapshot).toBe(true);
    store.admitProposal('p1', 100);
    store.writeSync([{ group: 'p1', entries: ents(6, 20, 1, 100) }]);
    expect(store.stats('p1')).toMatchObject({ bytes: 2000, overLimit: false });
    expect(() => store.admitProposal('p1', 1)).toThrow(ProposalDroppedError);
    store.saveSnapshotSync('p1', { meta: { index: 18, term: 1, confState: conf([]) }, data: bytes('s') }, 15);
    store = h.reopen(store);
    expect(store.stats('p1')).toMatchObject({
      firstIndex: 16,
      entries: 5,
      bytes: 500,
      entriesSinceSnapshot: 2,
      bytesSinceSnapshot: 200,
      shouldSnapshot: false,
    });
    store.admitProposal('p1', 100);
  });

  it('refuses writes once closed', () => {
    store.close();
    expect(() => store.writeSync([{ group: 'p1', entries: ents(1, 1, 1) }])).toThrow(StorageError);
    store = h.open();
  });
});
