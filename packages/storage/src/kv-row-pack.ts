/**
 * KV rows packed into one buffer for the writer thread: a snapshot install
 * writes its rows a thousand at a time, and a thousand rows as one byte array
 * cross to the writer for a copy of their bytes, where as statement arguments
 * (two byte arrays and six numbers each) they cost the structured clone of
 * every one on both threads, and the garbage after it: most of an install's
 * cost besides SQLite's own (see the storage README).
 *
 * Layout, little-endian, row after row: key length (u32), key, value length
 * (u32), value, create and mod revisions (f64), expiry (f64, NaN for none),
 * CRC (u32), version (f64), type code (u8).
 */

/** One row as the `put` statement takes it. */
export interface PackedRow {
  key: Uint8Array;
  value: Uint8Array;
  createRevision: number;
  modifyRevision: number;
  expiresAt: number | null;
  crc: number;
  version: number;
  type: number;
}

/** Bytes after a row's value: revisions, expiry, CRC, version, type. */
const TAIL = 8 + 8 + 8 + 4 + 8 + 1;
/** Bytes a row takes besides its key and value: the two lengths and the tail. */
const FIXED = 4 + 4 + TAIL;

/** Packs `rows` into one buffer. */
export function packRows(rows: readonly PackedRow[]): Uint8Array {
  let size = 0;
  for (const r of rows) size += FIXED + r.key.length + r.value.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const r of rows) {
    view.setUint32(at, r.key.length, true);
    out.set(r.key, at + 4);
    at += 4 + r.key.length;
    view.setUint32(at, r.value.length, true);
    out.set(r.value, at + 4);
    at += 4 + r.value.length;
    view.setFloat64(at, r.createRevision, true);
    view.setFloat64(at + 8, r.modifyRevision, true);
    view.setFloat64(at + 16, r.expiresAt ?? Number.NaN, true);
    view.setUint32(at + 24, r.crc, true);
    view.setFloat64(at + 28, r.version, true);
    out[at + 36] = r.type;
    at += TAIL;
  }
  return out;
}

/**
 * Calls `fn` with each row of `packed`, its key and value as Buffers over the
 * packed bytes (better-sqlite3 binds a Buffer as a blob). Throws on a buffer
 * that does not end where its last row does.
 */
export function forEachPackedRow(packed: Uint8Array, fn: (row: PackedRow) => void): void {
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const need = (from: number, length: number): void => {
    if (from + length > packed.byteLength) {
      throw new Error(`packed KV rows: a row at byte ${from} runs past the end (${packed.byteLength} bytes)`);
    }
  };
  const bytes = (from: number, length: number): Buffer => {
    need(from, length);
    return Buffer.from(packed.buffer, packed.byteOffset + from, length);
  };
  let at = 0;
  while (at < packed.byteLength) {
    need(at, 4);
    const key = bytes(at + 4, view.getUint32(at, true));
    at += 4 + key.length;
    need(at, 4);
    const value = bytes(at + 4, view.getUint32(at, true));
    at += 4 + value.length;
    need(at, TAIL);
    const expiresAt = view.getFloat64(at + 16, true);
    fn({
      key,
      value,
      createRevision: view.getFloat64(at, true),
      modifyRevision: view.getFloat64(at + 8, true),
      expiresAt: Number.isNaN(expiresAt) ? null : expiresAt,
      crc: view.getUint32(at + 24, true),
      version: view.getFloat64(at + 28, true),
      type: packed[at + 36] as number,
    });
    at += TAIL;
  }
}
