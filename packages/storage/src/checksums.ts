import type { Entry, HardState, SnapshotMeta } from '@cohort/core';
import { crc32c, crc32cNumber, crc32cString } from './crc32c.js';

/** Stored code of an entry type. */
export function entryTypeCode(type: Entry['type']): number {
  return type === 'normal' ? 0 : 1;
}

/** Entry type of a stored code, or undefined for an unknown code. */
export function entryTypeOf(code: number): Entry['type'] | undefined {
  return code === 0 ? 'normal' : code === 1 ? 'confChange' : undefined;
}

const groupSeeds = new Map<string, number>();
const fields = new DataView(new ArrayBuffer(24));
const fieldBytes = new Uint8Array(fields.buffer);

/**
 * CRC-32C over every field of an entry, including its group, so a row moved
 * to another group is caught: the group name (as {@link crc32cString}), then
 * index, term and type as little-endian float64s, then the data.
 */
export function entryCrc(group: string, index: number, term: number, typeCode: number, data: Uint8Array): number {
  // The group's part is the same for every entry: computed once per group name.
  let seed = groupSeeds.get(group);
  if (seed === undefined) {
    seed = crc32cString(group, 0);
    if (groupSeeds.size < 65_536) groupSeeds.set(group, seed);
  }
  fields.setFloat64(0, index, true);
  fields.setFloat64(8, term, true);
  fields.setFloat64(16, typeCode, true);
  return crc32c(data, crc32c(fieldBytes, seed));
}

/** The fields of a `groups` row. */
export interface GroupRow {
  name: string;
  hardState: HardState;
  compactIndex: number;
  compactTerm: number;
  lastIndex: number;
  snapId: number;
}

/** CRC-32C over every field of a `groups` row. */
export function groupRowCrc(r: GroupRow): number {
  let c = crc32cString(r.name, 0);
  c = crc32cNumber(r.hardState.term, c);
  c = crc32cString(r.hardState.vote, c);
  c = crc32cNumber(r.hardState.commit, c);
  c = crc32cNumber(r.compactIndex, c);
  c = crc32cNumber(r.compactTerm, c);
  c = crc32cNumber(r.lastIndex, c);
  return crc32cNumber(r.snapId, c);
}

/** CRC-32C over a snapshot row: its group, metadata, size and chunk count. */
export function snapshotRowCrc(
  gid: number,
  meta: SnapshotMeta,
  confJson: string,
  size: number,
  chunks: number,
): number {
  let c = crc32cNumber(gid, 0);
  c = crc32cNumber(meta.index, c);
  c = crc32cNumber(meta.term, c);
  c = crc32cString(confJson, c);
  c = crc32cNumber(size, c);
  return crc32cNumber(chunks, c);
}

/** CRC-32C of a snapshot chunk, bound to its snapshot and position. */
export function chunkCrc(sid: number, seq: number, data: Uint8Array): number {
  return crc32c(data, crc32cNumber(seq, crc32cNumber(sid, 0)));
}
