import { emptyConfState } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../src/index.js';
import { bytes } from './network.js';

const ent = (index: number, term: number) => ({ index, term, type: 'normal' as const, data: bytes(`${index}`) });

describe('MemoryStorage', () => {
  it('appending at an existing index replaces that entry and everything after it', () => {
    const st = new MemoryStorage();
    st.append([ent(1, 1), ent(2, 1), ent(3, 1)]);
    st.append([ent(2, 2)]);
    expect(st.lastIndex()).toBe(2);
    expect(st.term(2)).toBe(2);
    expect(() => st.append([ent(5, 2)])).toThrow(expect.objectContaining({ name: 'StorageError' }));
  });

  it('entries honour the byte limit but always return at least one', () => {
    const st = new MemoryStorage();
    st.append([ent(1, 1), ent(2, 1), ent(3, 1)]);
    expect(st.entries(1, 4, 0)).toHaveLength(1);
    expect(st.entries(1, 4, 2)).toHaveLength(2);
    expect(() => st.entries(1, 5, 100)).toThrow(expect.objectContaining({ name: 'UnavailableError' }));
  });

  it('snapshots and compaction keep the snapshot term and refuse to go back', () => {
    const st = new MemoryStorage();
    st.append([ent(1, 1), ent(2, 2), ent(3, 2)]);
    st.createSnapshot(2, emptyConfState(), bytes('s'));
    st.compact(2);
    expect(st.firstIndex()).toBe(3);
    expect(st.term(2)).toBe(2);
    expect(() => st.term(1)).toThrow(expect.objectContaining({ name: 'CompactedError' }));
    expect(() => st.createSnapshot(1, emptyConfState(), bytes('old'))).toThrow(
      expect.objectContaining({ name: 'StorageError' }),
    );
    // Entries already inside the snapshot are skipped on append.
    st.append([ent(2, 2), ent(3, 2), ent(4, 3)]);
    expect(st.lastIndex()).toBe(4);
    st.applySnapshot({ meta: { index: 10, term: 4, confState: emptyConfState() }, data: bytes('x') });
    expect(st.firstIndex()).toBe(11);
    expect(st.lastIndex()).toBe(10);
  });
});
