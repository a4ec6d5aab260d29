import { CorruptStateError } from '@cohort/core/errors';
import { hexKey, kvRowCrc, responseCrc, sessionCrc } from './kv-checksums.js';
import { type ClientSession, type KvRecord, type SessionRecord, type SessionResponse, typeOfCode } from './types.js';

/** A `kv` row as SQLite returns it. */
export interface KvRow {
  key: Uint8Array;
  value: Uint8Array;
  create_rev: number;
  mod_rev: number;
  expires_at: number | null;
  crc: number;
  /** Absent in a schema 4 file (read by the data directory check before migrating): version 1. */
  version?: number;
  /** Absent before schema 6: 0, a string. */
  type?: number;
}

/** A `sessions` row. */
export interface SessionRow {
  client_id: string;
  low_water: number;
  last_active: number;
  crc: number;
}

/** A `session_responses` row. */
export interface ResponseRow {
  seq: number;
  response: Uint8Array;
  crc: number;
}

/** Where rows come from, for error messages. */
export interface RowSource {
  file: string;
  partition: string;
}

/** A Uint8Array over a Buffer's bytes (no copy). */
export const view = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
/** A Buffer over a Uint8Array's bytes (no copy), as better-sqlite3 binds blobs. */
export const blob = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Whether a KV row's CRC matches its columns. */
export function rowCrcHolds(partition: string, r: KvRow): boolean {
  return (
    kvRowCrc(partition, r.key, r.value, r.create_rev, r.mod_rev, r.expires_at, r.version ?? 1, r.type ?? 0) === r.crc
  );
}

/** Verifies a row's CRC and turns it into a record; a mismatch throws `StorageError`. */
export function toRecord(src: RowSource, r: KvRow): KvRecord {
  if (!rowCrcHolds(src.partition, r)) {
    throw new CorruptStateError(
      `${src.file}: partition ${src.partition}: KV row for key ${hexKey(r.key)} is corrupt (checksum mismatch); restore the partition from a healthy replica's snapshot`,
      src.partition,
    );
  }
  const rec: KvRecord = {
    key: view(r.key),
    value: view(r.value),
    createRevision: r.create_rev,
    modifyRevision: r.mod_rev,
    version: r.version ?? 1,
  };
  if (r.expires_at !== null) rec.expiresAt = r.expires_at;
  const type = r.type ? typeOfCode(r.type) : undefined;
  if (type !== undefined) rec.type = type;
  return rec;
}

/** Verifies a session row's CRC. */
export function toSession(src: RowSource, r: SessionRow): ClientSession {
  const s: ClientSession = { clientId: r.client_id, lowWater: r.low_water, lastActive: r.last_active };
  if (sessionCrc(src.partition, s) !== r.crc) {
    throw new CorruptStateError(
      `${src.file}: partition ${src.partition}: session of client ${r.client_id} is corrupt (checksum mismatch); restore the partition from a healthy replica's snapshot`,
      src.partition,
    );
  }
  return s;
}

/** Verifies a stored response's CRC. */
export function toResponse(src: RowSource, clientId: string, r: ResponseRow): SessionResponse {
  if (responseCrc(src.partition, clientId, r.seq, r.response) !== r.crc) {
    throw new CorruptStateError(
      `${src.file}: partition ${src.partition}: stored response ${r.seq} of client ${clientId} is corrupt (checksum mismatch); restore the partition from a healthy replica's snapshot`,
      src.partition,
    );
  }
  return { seq: r.seq, response: view(r.response) };
}

/** A session record from its row and response rows. */
export function toSessionRecord(src: RowSource, r: SessionRow, responses: ResponseRow[]): SessionRecord {
  return { ...toSession(src, r), responses: responses.map((x) => toResponse(src, r.client_id, x)) };
}
