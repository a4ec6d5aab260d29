import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EntrySizes } from '../src/entry-sizes.js';

/** A value beside the plain list of sizes it stands for: `sizes[i]` is entry `base + 1 + i`'s. */
interface Modelled {
  v: EntrySizes;
  base: number;
  sizes: number[];
}

const op = fc.oneof(
  fc.record({ kind: fc.constant('append' as const), bytes: fc.integer({ min: 0, max: 5000 }), from: fc.nat() }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), from: fc.nat() }),
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat(), from: fc.nat() }),
);

/** Every run of entries of `m` sums as the list says. */
function check(m: Modelled): void {
  expect(m.v.base).toBe(m.base);
  expect(m.v.last).toBe(m.base + m.sizes.length);
  for (let lo = 0; lo < m.sizes.length; lo++) {
    let want = 0;
    for (let hi = lo; hi < m.sizes.length; hi++) {
      want += m.sizes[hi] as number;
      expect(m.v.sum(m.base + 1 + lo, m.base + 1 + hi)).toBe(want);
    }
  }
}

describe('EntrySizes', () => {
  it('sums as a plain list does, whichever earlier value each change starts from', () => {
    fc.assert(
      fc.property(fc.nat({ max: 1000 }), fc.array(op, { maxLength: 120 }), (base, ops) => {
        // Changes start from any value made so far, as a store's working copies of a group's state
        // start from the last one kept, some of them dropped: no value may see another's changes.
        const made: Modelled[] = [{ v: EntrySizes.empty(base), base, sizes: [] }];
        for (const o of ops) {
          const m = made[o.from % made.length] as Modelled;
          if (o.kind === 'append') {
            made.push({ v: m.v.append(o.bytes), base: m.base, sizes: [...m.sizes, o.bytes] });
          } else if (o.kind === 'cut') {
            const keep = o.at % (m.sizes.length + 1);
            made.push({ v: m.v.cut(m.base + 1 + keep), base: m.base, sizes: m.sizes.slice(0, keep) });
          } else {
            const drop = o.at % (m.sizes.length + 1);
            made.push({ v: m.v.dropTo(m.base + drop), base: m.base + drop, sizes: m.sizes.slice(drop) });
          }
        }
        for (const m of made) check(m);
      }),
      { numRuns: 200 },
    );
  });

  it('is built from a list of sizes', () => {
    const s = EntrySizes.of(10, [5, 7, 11]);
    expect([s.base, s.last, s.count]).toEqual([10, 13, 3]);
    expect(s.sum(11, 13)).toBe(23);
    expect(s.sum(12, 12)).toBe(7);
    expect(s.sum(13, 12)).toBe(0);
  });

  it('refuses runs it does not hold and changes out of its range', () => {
    const s = EntrySizes.of(10, [5, 7, 11]).dropTo(11);
    expect(() => s.sum(11, 12)).toThrow(/outside the 12..13 held/);
    expect(() => s.sum(12, 14)).toThrow(/outside/);
    expect(() => s.cut(11)).toThrow(/at or before the base 11/);
    expect(() => s.dropTo(14)).toThrow(/past the last entry 13/);
    expect(s.dropTo(9)).toBe(s);
    expect(s.cut(20)).toBe(s);
  });
});
