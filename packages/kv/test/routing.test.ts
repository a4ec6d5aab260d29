import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SLOTS, SlotMap, crc16, routeKeys, slotOfKey } from '../src/routing.js';

const enc = new TextEncoder();
const key = (s: string) => enc.encode(s);

describe('slots', () => {
  it('hashes with CRC16-CCITT (XMODEM) as the Redis Cluster spec states', () => {
    // The spec's check value: CRC16 of "123456789" is 0x31C3.
    expect(crc16(key('123456789'))).toBe(0x31c3);
  });

  it('answers CLUSTER KEYSLOT as redis-server 7 does, hash tags included', () => {
    // Each value is what `redis-cli CLUSTER KEYSLOT <key>` answered from redis-server 7.0.15 (cluster-enabled).
    const cases: [string, number][] = [
      ['123456789', 12739],
      ['foo', 12182],
      ['bar', 5061],
      ['hello', 866],
      ['', 0],
      ['{user1000}.following', 3443],
      ['{user1000}.followers', 3443],
      ['foo{}{bar}', 8363], // an empty tag: the whole key hashes
      ['foo{{bar}}zap', 4015], // the tag is "{bar"
      ['{bar', 4015],
      ['foo{bar}{zap}', 5061], // the first tag only: "bar"
      ['a{b}', 3300],
    ];
    for (const [k, slot] of cases) expect(slotOfKey(key(k)), k).toBe(slot);
  });

  it('hashes keys of any bytes', () => {
    expect(slotOfKey(Uint8Array.from([0xff, 0x00, 0x7b, 0x01, 0x7d]))).toBe(crc16(Uint8Array.from([1])) & (SLOTS - 1));
  });
});

describe('SlotMap', () => {
  it('maps slots onto contiguous ranges covering every slot exactly once', () => {
    for (const p of [1, 2, 3, 4, 7, 16, 1000]) {
      const map = new SlotMap(p);
      let next = 0;
      for (let i = 0; i < p; i++) {
        const [lo, hi] = map.slotRange(i);
        expect(lo).toBe(next);
        expect(hi).toBeGreaterThanOrEqual(lo);
        expect(map.partitionOfSlot(lo)).toBe(i);
        expect(map.partitionOfSlot(hi)).toBe(i);
        next = hi + 1;
      }
      expect(next).toBe(SLOTS);
    }
    expect(new SlotMap(4).slotRange(1)).toEqual([4096, 8191]);
  });

  it('agrees with its ranges for every slot', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: SLOTS }), fc.integer({ min: 0, max: SLOTS - 1 }), (p, slot) => {
        const map = new SlotMap(p);
        const [lo, hi] = map.slotRange(map.partitionOfSlot(slot));
        return lo <= slot && slot <= hi;
      }),
    );
  });

  it('refuses a partition count out of range', () => {
    expect(() => new SlotMap(0)).toThrow(/from 1 to 16384/);
    expect(() => new SlotMap(SLOTS + 1)).toThrow(/from 1 to 16384/);
    expect(() => new SlotMap(1.5)).toThrow(/whole number/);
  });
});

describe('routeKeys', () => {
  const map = new SlotMap(4);

  it('routes every request to the one partition when there is one, whatever its keys', () => {
    expect(routeKeys([key('foo'), key('bar')])).toEqual({ group: 0, slot: 12182 });
    expect(routeKeys([])).toEqual({ group: 0 });
  });

  it('routes keys of one slot to their partition', () => {
    expect(routeKeys([key('foo')], map)).toEqual({ group: 2, slot: 12182 });
    expect(routeKeys([key('{user1000}.following'), key('{user1000}.followers')], map)).toEqual({
      group: 0,
      slot: 3443,
    });
  });

  it('splits keys spanning slots over their partitions, in request order', () => {
    // foo: slot 12182 (p2), bar: 5061 (p1), hello: 866 (p0), 123456789: 12739 (p3), {bar}x: 5061 (p1).
    const route = routeKeys([key('foo'), key('bar'), key('hello'), key('123456789'), key('{bar}x')], map);
    expect(route).toEqual({
      crossSlot: true,
      splits: [
        { group: 2, indexes: [0] },
        { group: 1, indexes: [1, 4] },
        { group: 0, indexes: [2] },
        { group: 3, indexes: [3] },
      ],
    });
  });

  it('calls keys of two slots of one partition cross-slot too, as Redis Cluster does', () => {
    // hello (866) and a{b} (3300) both lie in p0's slots 0..4095.
    expect(routeKeys([key('hello'), key('a{b}')], map)).toEqual({
      crossSlot: true,
      splits: [{ group: 0, indexes: [0, 1] }],
    });
  });
});
