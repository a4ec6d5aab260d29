/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven with
 * slicing-by-8 so checksumming 4 KB entries stays cheap next to an fsync.
 */

const POLY = 0x82f63b78;

/** TABLES[k][b]: the CRC of byte b followed by k zero bytes. */
const TABLES: Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const t0 = tables[0] as Uint32Array;
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[b] = c >>> 0;
  }
  for (let k = 1; k < 8; k++) {
    const prev = tables[k - 1] as Uint32Array;
    const cur = tables[k] as Uint32Array;
    for (let b = 0; b < 256; b++) cur[b] = ((prev[b] as number) >>> 8) ^ (t0[(prev[b] as number) & 0xff] as number);
  }
  return tables;
})();

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
];

/** Continues a CRC-32C over `bytes`; start from 0. Returns an unsigned 32-bit value. */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  // Indices below are in range by construction; the `as number` casts only satisfy noUncheckedIndexedAccess.
  if (n >= 64 && LITTLE_ENDIAN) {
    // Byte at a time up to a 4-byte boundary, then two aligned little-endian words per step.
    while (((bytes.byteOffset + i) & 3) !== 0) c = (T0[(c ^ (bytes[i++] as number)) & 0xff] as number) ^ (c >>> 8);
    const words = Math.floor((n - i) / 8) * 2;
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let k = 0; k < words; k += 2) {
      const lo = (c ^ (w[k] as number)) >>> 0;
      const hi = w[k + 1] as number;
      c =
        (T7[lo & 0xff] as number) ^
        (T6[(lo >>> 8) & 0xff] as number) ^
        (T5[(lo >>> 16) & 0xff] as number) ^
        (T4[lo >>> 24] as number) ^
        (T3[hi & 0xff] as number) ^
        (T2[(hi >>> 8) & 0xff] as number) ^
        (T1[(hi >>> 16) & 0xff] as number) ^
        (T0[hi >>> 24] as number);
    }
    i += words * 4;
  } else {
    // Short inputs: slicing-by-8 on bytes, without creating a word view.
    const end8 = n - (n % 8);
    while (i < end8) {
      const lo =
        (c ^
          ((bytes[i] as number) |
            ((bytes[i + 1] as number) << 8) |
            ((bytes[i + 2] as number) << 16) |
            ((bytes[i + 3] as number) << 24))) >>>
        0;
      c =
        (T7[lo & 0xff] as number) ^
        (T6[(lo >>> 8) & 0xff] as number) ^
        (T5[(lo >>> 16) & 0xff] as number) ^
        (T4[lo >>> 24] as number) ^
        (T3[bytes[i + 4] as number] as number) ^
        (T2[bytes[i + 5] as number] as number) ^
        (T1[bytes[i + 6] as number] as number) ^
        (T0[bytes[i + 7] as number] as number);
      i += 8;
    }
  }
  while (i < n) c = (T0[(c ^ (bytes[i++] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

const scratch = new DataView(new ArrayBuffer(8));
const scratchBytes = new Uint8Array(scratch.buffer);

/** Continues a CRC-32C over a number as 8 little-endian bytes of a float64 (exact for every log index and term). */
export function crc32cNumber(value: number, crc: number): number {
  scratch.setFloat64(0, value, true);
  return crc32c(scratchBytes, crc);
}

const encoder = new TextEncoder();

/** Continues a CRC-32C over a string's UTF-8 bytes and its length (so adjacent strings cannot blur). */
export function crc32cString(value: string, crc: number): number {
  const bytes = encoder.encode(value);
  return crc32c(bytes, crc32cNumber(bytes.length, crc));
}
