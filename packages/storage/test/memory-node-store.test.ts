import { type Entry, SeededRandom, StorageError } from '@cohort/core';
import { emptyConfState } from '@cohort/core/raft-types';
import { describe, expect, it } from 'vitest';
import { MemoryNodeStore } from '../src/memory-node-store.js';
import { ents } from './harness.js';

/** What `stats()` must say, counted the slow way: a walk over every entry held. */
function walked(store: MemoryNodeStore, group: string): { bytes: number; bytesSinceSnapshot: number } {
  const r = store.group(group);
  const snapIndex = store.openSnapshot(group)?.meta.index ?? 0;
  let bytes = 0;
  let since = 0;
  for (const e of r.entries(r.firstIndex(), r.lastIndex() + 1, Number.MAX_SAFE_INTEGER)) {
    bytes += e.data.length;
    if (e.index > snapIndex) since += e.data.length;
  }
  return { bytes, bytesSinceSnapshot: since };
}

describe('MemoryNodeStore', () => {
  it('keeps the written entries without copying them; one modified after the write fails its checksum', () => {
    const store = new MemoryNodeStore();
    const written = ents(1, 3, 1, 8);
    store.writeSync([{ group: 'p1', entries: written }]);
    expect(store.group('p1').entries(1, 4, 1e9)[1]).toBe(written[1]);
    // Breaking the contract (entries are immutable once handed over) reads as a damaged disk, never as data.
    (written[1] as Entry).data[0] = 0xee;
    expect(() => store.group('p1').entries(1, 4, 1e9)).toThrow(/entry 2 is corrupt/);
  });

  it('checks an entry written to two groups against each group', () => {
    const store = new MemoryNodeStore();
    const shared = ents(1, 2, 1, 4);
    store.writeSync([{ group: 'p1', entries: shared }]);
    store.writeSync([{ group: 'p2', entries: shared }]);
    expect(store.group('p1').entries(1, 3, 1e9)).toHaveLength(2);
    expect(store.group('p2').entries(1, 3, 1e9)).toHaveLength(2);
  });

  it('counts log bytes as a walk over the log would, through truncations, snapshots, compactions and crashes (seeded)', () => {
    const seed = Number(process.env.COHORT_STORAGE_SEED ?? 11);
    const rng = new SeededRandom(seed);
    const store = new MemoryNodeStore({ autoSync: false });
    const conf = emptyConfState();
    for (let step = 0; step < 1500; step++) {
      const r = store.group('p1');
      const first = r.firstIndex();
      const last = r.lastIndex();
      const snap = store.openSnapshot('p1')?.meta.index ?? 0;
      const x = rng.next();
      if (x < 0.5) {
        // Appends, sometimes overwriting a suffix (never below the compaction point).
        const from = rng.next() < 0.3 ? rng.int(first, last + 1) : last + 1;
        store.writeSync([{ group: 'p1', entries: ents(from, from + rng.int(0, 4), 1, rng.int(0, 50)) }]);
      } else if (x < 0.6 && last > snap) {
        const at = rng.int(snap + 1, last);
        store.saveSnapshotSync(
          'p1',
          { meta: { index: at, term: 1, confState: conf }, data: new Uint8Array(3) },
          at - 1,
        );
      } else if (x < 0.65) {
        // A snapshot received from a leader, past the end of the log: it replaces the log.
        const at = last + rng.int(1, 5);
        store.writeSync([
          { group: 'p1', snapshot: { meta: { index: at, term: 1, confState: conf }, data: new Uint8Array(2) } },
        ]);
      } else if (x < 0.75 && snap >= first) {
        store.compact('p1', rng.int(first - 1, snap));
      } else if (x < 0.9) {
        store.sync();
      } else {
        store.crash();
      }
      expect(store.stats('p1'), `seed ${seed}, step ${step}`).toMatchObject(walked(store, 'p1'));
    }
  });

  it('refuses a bad batch without changing anything', () => {
    const store = new MemoryNodeStore();
    store.writeSync([{ group: 'p1', entries: ents(1, 2, 1, 10) }]);
    expect(() => store.writeSync([{ group: 'p1', entries: ents(5, 6, 1, 10) }])).toThrow(StorageError);
    expect(store.group('p1').lastIndex()).toBe(2);
    expect(store.stats('p1')).toMatchObject({ bytes: 20 });
  });
});
