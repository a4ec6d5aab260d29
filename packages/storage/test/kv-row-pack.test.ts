import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type PackedRow, forEachPackedRow, packRows } from '../src/kv-row-pack.js';

const row = fc.record({
  key: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  value: fc.uint8Array({ maxLength: 300 }),
  createRevision: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  modifyRevision: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  expiresAt: fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { nil: null }),
  crc: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  version: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  type: fc.integer({ min: 0, max: 2 }),
});

const unpack = (packed: Uint8Array): PackedRow[] => {
  const out: PackedRow[] = [];
  forEachPackedRow(packed, (r) => out.push({ ...r, key: new Uint8Array(r.key), value: new Uint8Array(r.value) }));
  return out;
};

describe('packed KV rows', () => {
  it('unpack to the rows packed, every field, in order', () => {
    fc.assert(
      fc.property(fc.array(row, { maxLength: 40 }), (rows) => {
        expect(unpack(packRows(rows))).toEqual(rows);
      }),
    );
  });

  it('unpack from a view into a larger buffer (as a message may deliver it)', () => {
    const rows: PackedRow[] = [
      {
        key: new Uint8Array([1, 2]),
        value: new Uint8Array([3]),
        createRevision: 1,
        modifyRevision: 2,
        expiresAt: null,
        crc: 7,
        version: 1,
        type: 0,
      },
    ];
    const packed = packRows(rows);
    const big = new Uint8Array(packed.length + 20);
    big.set(packed, 10);
    expect(unpack(big.subarray(10, 10 + packed.length))).toEqual(rows);
  });

  it('refuses a buffer cut anywhere inside a row', () => {
    const packed = packRows([
      {
        key: new Uint8Array([9]),
        value: new Uint8Array(5),
        createRevision: 1,
        modifyRevision: 1,
        expiresAt: 5,
        crc: 1,
        version: 1,
        type: 1,
      },
    ]);
    for (let cut = 1; cut < packed.length; cut++) {
      expect(() => forEachPackedRow(packed.subarray(0, cut), () => {})).toThrow(/runs past the end/);
    }
  });
});
