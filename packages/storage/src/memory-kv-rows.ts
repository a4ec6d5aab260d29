import { CorruptStateError } from '@cohort/core/errors';
import { hexKey, kvRowCrc, responseCrc, sessionCrc } from './kv-checksums.js';
import type { MemRow, MemSession } from './memory-state.js';
import { recordOf } from './record-copy.js';
import { type ClientSession, type KvRecord, typeCode } from './types.js';

/** Where a partition lives, for error messages and row checks. */
export interface MemSource {
  name: string;
  partition: string;
}

/** Verifies a stored row's CRC and returns a copy of its record. */
export function checkedRecord(src: MemSource, row: MemRow): KvRecord {
  const r = row.record;
  if (
    kvRowCrc(
      src.partition,
      r.key,
      r.value,
      r.createRevision,
      r.modifyRevision,
      r.expiresAt,
      r.version,
      typeCode(r.type),
    ) !== row.crc
  ) {
    throw new CorruptStateError(
      `${src.name}: partition ${src.partition}: KV row for key ${hexKey(r.key)} is corrupt (checksum mismatch); restore the partition from a healthy replica's snapshot`,
      src.partition,
    );
  }
  return recordOf(r, r.key.slice(), r.value.slice());
}

/** Verifies a stored session's CRC. */
export function checkedSession(src: MemSource, clientId: string, s: MemSession): ClientSession {
  const out = { clientId, lowWater: s.lowWater, lastActive: s.lastActive };
  if (sessionCrc(src.partition, out) !== s.crc) {
    throw new CorruptStateError(
      `${src.name}: partition ${src.partition}: session of client ${clientId} is corrupt (checksum mismatch); restore the partition from a healthy replica's snapshot`,
      src.partition,
    );
  }
  return out;
}

/** Verifies a stored response's CRC and returns a copy. */
export function checkedResponse(src: MemSource, clientId: string, seq: number, s: MemSession): Uint8Array | undefined {
  const r = s.responses.get(seq);
  if (!r) return undefined;
  if (responseCrc(src.partition, clientId, seq, r.response) !== r.crc) {
    throw new CorruptStateError(
      `${src.name}: partition ${src.partition}: stored response ${seq} of client ${clientId} is corrupt (checksum mismatch); restore the partition from a healthy replica's snapshot`,
      src.partition,
    );
  }
  return r.response.slice();
}

/** A stored row for `record` with its CRC. */
export function memRow(partition: string, record: KvRecord): MemRow {
  const { key, value, createRevision, modifyRevision, expiresAt, version, type } = record;
  return {
    record,
    crc: kvRowCrc(partition, key, value, createRevision, modifyRevision, expiresAt, version, typeCode(type)),
  };
}

/** A stored session with its CRC. */
export function memSession(
  partition: string,
  s: ClientSession,
  responses: ReadonlyMap<number, { response: Uint8Array; crc: number }>,
): MemSession {
  return { lowWater: s.lowWater, lastActive: s.lastActive, crc: sessionCrc(partition, s), responses };
}
