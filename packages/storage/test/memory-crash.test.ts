import { SeededRandom, StorageError } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryNodeStore } from '../src/memory-node-store.js';
import { ents } from './harness.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('MemoryNodeStore crash model', () => {
  it('loses every write not yet synced, keeps every synced one', () => {
    const store = new MemoryNodeStore({ autoSync: false });
    store.writeSync([{ group: 'p1', entries: ents(1, 3, 1), hardState: { term: 1, vote: 'n1', commit: 0 } }]);
    store.sync();
    store.writeSync([{ group: 'p1', entries: ents(4, 6, 1), hardState: { term: 1, vote: 'n1', commit: 3 } }]);
    expect(store.group('p1').lastIndex()).toBe(6);
    expect(store.unsyncedWrites()).toBe(1);
    store.crash();
    expect(store.group('p1').lastIndex()).toBe(3);
    expect(store.group('p1').initialState().hardState.commit).toBe(0);
    expect(store.unsyncedWrites()).toBe(0);
  });

  it('lets a single write be synced while the store defaults to volatile', () => {
    const store = new MemoryNodeStore({ autoSync: false });
    store.writeSync([{ group: 'p1', entries: ents(1, 2, 1) }], { sync: true });
    store.writeSync([{ group: 'p1', entries: ents(3, 3, 1) }]);
    store.crash();
    expect(store.group('p1').lastIndex()).toBe(2);
  });

  it('may leave applies volatile while the plain appends after them sync, never past a snapshot', () => {
    const store = new MemoryNodeStore({ autoSync: false });
    const apply = (v: string, revision: number): void => {
      store.transaction(() => store.kv('p1').put(bytes('k'), bytes(v), { revision }), { durable: false });
    };
    store.writeSync([{ group: 'p1', entries: ents(1, 10, 1) }]);
    store.sync();
    apply('v1', 1);
    store.writeSync([{ group: 'p1', entries: ents(11, 11, 1) }]);
    store.sync({ holdApplies: true });
    expect(store.unsyncedWrites()).toBe(1);
    store.crash();
    // The append after the apply survived it; the apply is replayed from the log.
    expect(store.group('p1').lastIndex()).toBe(11);
    expect(store.kv('p1').get(bytes('k'))).toBeUndefined();
    // A snapshot (and its compaction) after an apply makes the apply durable first.
    apply('v2', 2);
    store.writeSync([{ group: 'p1', entries: ents(12, 12, 1) }]);
    store.saveSnapshotSync(
      'p1',
      { meta: { index: 8, term: 1, confState: store.group('p1').initialState().confState }, data: bytes('s') },
      5,
    );
    store.sync({ holdApplies: true });
    expect(store.unsyncedWrites()).toBe(0);
    store.crash();
    expect(store.group('p1').firstIndex()).toBe(6);
    expect(store.kv('p1').get(bytes('k'))?.value).toEqual(bytes('v2'));
  });

  it('loses unsynced KV writes, snapshots and compactions too', () => {
    const store = new MemoryNodeStore({ autoSync: false });
    store.writeSync([{ group: 'p1', entries: ents(1, 10, 1) }]);
    store.kv('p1').put(bytes('k'), bytes('v'), { revision: 1 });
    store.sync();
    store.saveSnapshotSync(
      'p1',
      { meta: { index: 8, term: 1, confState: store.group('p1').initialState().confState }, data: bytes('s') },
      5,
    );
    store.kv('p1').put(bytes('k'), bytes('v2'), { revision: 2 });
    store.crash();
    expect(store.group('p1').firstIndex()).toBe(1);
    expect(store.openSnapshot('p1')).toBeUndefined();
    expect(new TextDecoder().decode(store.kv('p1').get(bytes('k'))?.value)).toBe('v');
  });

  it('after random crashes, the durable log is exactly the synced prefix (seeded)', () => {
    const seed = Number(process.env.COHORT_STORAGE_SEED ?? 7);
    const rng = new SeededRandom(seed);
    const store = new MemoryNodeStore({ autoSync: false });
    let synced = 0;
    for (let step = 0; step < 2000; step++) {
      const last = store.group('p1').lastIndex();
      const r = rng.next();
      if (r < 0.6) {
        store.writeSync([{ group: 'p1', entries: ents(last + 1, last + rng.int(1, 3), 1) }]);
      } else if (r < 0.85) {
        store.sync();
        synced = last;
      } else {
        store.crash();
        expect(store.group('p1').lastIndex(), `seed ${seed}, step ${step}`).toBe(synced);
      }
    }
  });

  it('loses a non-durable transaction on a crash unless a later synced write follows', () => {
    const store = new MemoryNodeStore();
    const kv = store.kv('p1');
    store.transaction(
      () => {
        kv.put(bytes('a'), bytes('1'), { revision: 1 });
        kv.setApplied({ index: 1, term: 1, confState: store.group('p1').initialState().confState });
      },
      { durable: false },
    );
    expect(kv.applied().index).toBe(1);
    store.crash();
    expect(kv.get(bytes('a'))).toBeUndefined();
    expect(kv.applied().index).toBe(0);

    store.transaction(() => kv.put(bytes('b'), bytes('2'), { revision: 2 }), { durable: false });
    store.writeSync([{ group: 'p1', entries: ents(1, 1, 1) }]);
    store.crash();
    expect(new TextDecoder().decode(kv.get(bytes('b'))?.value)).toBe('2');
  });

  it('tears the last synced log write on a crash so that reading it fails its checksum', () => {
    const store = new MemoryNodeStore({ autoSync: false });
    store.writeSync([{ group: 'p1', entries: ents(1, 3, 1) }]);
    store.writeSync([{ group: 'p2', entries: ents(1, 2, 1) }]);
    store.sync();
    store.writeSync([{ group: 'p1', entries: ents(4, 5, 1) }]);
    store.crash({ tornLastWrite: true });
    // The unsynced tail is gone; of the synced writes, the last one (p2) is torn at its last entry.
    expect(store.group('p1').lastIndex()).toBe(3);
    expect(store.group('p1').entries(1, 4, 1e9)).toHaveLength(3);
    expect(store.group('p2').entries(1, 2, 1e9)).toHaveLength(1);
    expect(() => store.group('p2').entries(1, 3, 1e9)).toThrow(StorageError);
    expect(() => store.group('p2').entries(2, 3, 1e9)).toThrow(/group p2: entry 2 is corrupt/);
  });

  it('never serves an entry corrupted on the simulated disk', () => {
    const store = new MemoryNodeStore();
    store.writeSync([
      { group: 'p1', entries: [...ents(1, 3, 1), { index: 4, term: 1, type: 'normal', data: new Uint8Array() }] },
    ]);
    store.corruptEntry('p1', 2);
    store.corruptEntry('p1', 4);
    expect(() => store.group('p1').entries(1, 4, 1e9)).toThrow(/entry 2 is corrupt/);
    expect(() => store.group('p1').entries(4, 5, 1e9)).toThrow(/entry 4 is corrupt/);
    expect(store.group('p1').entries(3, 4, 1e9)).toHaveLength(1);
    store.crash();
    expect(() => store.group('p1').entries(2, 3, 1e9)).toThrow(StorageError);
    expect(() => store.corruptEntry('p1', 9)).toThrow(/no entry 9/);
  });
});
