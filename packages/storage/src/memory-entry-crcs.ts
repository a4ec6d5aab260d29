import type { Entry, GroupId, LogIndex } from '@cohort/core';
import { StorageError } from '@cohort/core/errors';
import { entryCrc, entryTypeCode } from './checksums.js';
import type { MemState } from './memory-state.js';

/**
 * The CRC of every entry a {@link MemoryNodeStore} holds, taken when it is
 * written and checked on every read, and the simulated damage that breaks it.
 * Entries are immutable and shared by the live and durable states (and with
 * the writer, which hands them over without a copy), so one map per group
 * keyed by entry object serves both.
 */
export class MemoryEntryCrcs {
  private readonly groups = new Map<GroupId, WeakMap<Entry, number>>();

  constructor(private readonly name: string) {}

  private crcs(group: GroupId): WeakMap<Entry, number> {
    let m = this.groups.get(group);
    if (!m) {
      m = new WeakMap();
      this.groups.set(group, m);
    }
    return m;
  }

  /** Records the CRC of an entry as it is stored. */
  stamp(group: GroupId, e: Entry): void {
    this.crcs(group).set(e, entryCrc(group, e.index, e.term, entryTypeCode(e.type), e.data));
  }

  /** Throws `StorageError` when a stored entry's bytes no longer match the CRC taken when it was written. */
  check(group: GroupId, e: Entry): void {
    const crc = this.groups.get(group)?.get(e);
    if (crc !== undefined && crc !== entryCrc(group, e.index, e.term, entryTypeCode(e.type), e.data)) {
      throw new StorageError(
        `${this.name}: group ${group}: entry ${e.index} is corrupt (checksum mismatch); the node must not serve from this log`,
      );
    }
  }

  /** Replaces entry `index` of `group` in `s` by a copy with a damaged byte (or a wrong CRC when it has no data). */
  damage(s: MemState, group: GroupId, index: LogIndex): void {
    const g = s.groups.get(group);
    const e = g?.entries[index - g.compactIndex - 1];
    if (!g || !e) return;
    const bad = { ...e, data: e.data.slice() };
    const crcs = this.crcs(group);
    const crc = crcs.get(e) ?? entryCrc(group, e.index, e.term, entryTypeCode(e.type), e.data);
    if (bad.data.length > 0) {
      bad.data[0] = (bad.data[0] as number) ^ 0xff;
      crcs.set(bad, crc);
    } else {
      crcs.set(bad, (crc ^ 1) >>> 0);
    }
    g.entries[index - g.compactIndex - 1] = bad;
  }
}
