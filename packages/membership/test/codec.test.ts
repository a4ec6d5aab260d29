import { CodecError, SeededRandom } from '@cohort/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeSwim, encodeSwim } from '../src/codec.js';
import type { SwimMessage } from '../src/messages.js';

const g = [
  { id: 'a', address: 'h:1', incarnation: 3, state: 'suspect' as const, tags: {}, by: 'b' },
  { id: 'c', address: 'h:2', incarnation: 0, state: 'alive' as const, tags: { role: 'kv', zone: 'z1' } },
];

describe('swim codec', () => {
  it('round-trips every message type', () => {
    const all: SwimMessage[] = [
      { type: 'ping', seq: 1, target: 'x', gossip: g },
      { type: 'ack', seq: 2, gossip: [] },
      { type: 'nack', seq: 3, gossip: g },
      { type: 'ping-req', seq: 4, target: 'y', targetAddress: '10.0.0.1:7', gossip: g },
      { type: 'gossip', gossip: g },
      { type: 'push-pull', reply: true, join: false, members: g },
    ];
    for (const m of all) expect(decodeSwim(encodeSwim(m))).toEqual(m);
  });

  it('is compact: a ping with no gossip is a few bytes', () => {
    expect(encodeSwim({ type: 'ping', seq: 12, target: 'node-1', gossip: [] }).length).toBeLessThan(24);
  });

  it('rejects an unknown version with CodecError', () => {
    const f = encodeSwim({ type: 'ack', seq: 1, gossip: [] });
    f[0] = 9;
    expect(() => decodeSwim(f)).toThrow(CodecError);
  });

  it('rejects malformed bodies with CodecError', () => {
    const bad = [
      '[]',
      '[99,1]',
      '[0,1,"x"]',
      '[1,-1,[]]',
      '[1,1.5,[]]',
      '[0,1,2,[]]',
      '[4,[["a","h",1,7]]]',
      '[4,[["a","h",1]]]',
      '[4,[["a","h",1,0,{"k":3}]]]',
      '{"t":1}',
      'nul',
    ];
    for (const b of bad) {
      const frame = new Uint8Array([1, ...new TextEncoder().encode(b)]);
      expect(() => decodeSwim(frame), b).toThrow(CodecError);
    }
  });

  it('never crashes on random garbage: every failure is a CodecError', () => {
    const random = new SeededRandom(1234);
    for (let i = 0; i < 2000; i++) {
      const len = random.int(0, 64);
      const f = new Uint8Array(len);
      for (let j = 0; j < len; j++) f[j] = random.int(0, 255);
      if (len > 0 && i % 2 === 0) f[0] = 1;
      try {
        decodeSwim(f);
      } catch (e) {
        expect(e, `seed 1234 iteration ${i}`).toBeInstanceOf(CodecError);
      }
    }
  });

  it('answers JSON bodies shaped almost like its messages, and damaged frames, with a CodecError or a message', () => {
    const near = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.integer({ min: -2, max: 8 }),
        fc.double(),
        fc.constantFrom('a', 'h:1', 'alive', 'suspect', 'dead', '', '__proto__', 'constructor'),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('value'), { maxLength: 6 }),
        fc.dictionary(fc.constantFrom('zone', 'role', '__proto__', 'toString'), tie('value'), { maxKeys: 3 }),
      ),
    })).value;
    const te = new TextEncoder();
    const valid = fc
      .constantFrom<SwimMessage>(
        { type: 'ping', seq: 1, target: 'x', gossip: g },
        { type: 'ping-req', seq: 4, target: 'y', targetAddress: '10.0.0.1:7', gossip: g },
        { type: 'push-pull', reply: true, join: false, members: g },
      )
      .map(encodeSwim);
    const damaged = fc
      .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([f, edits]) => {
        const out = Uint8Array.from(f);
        for (const [at, byte] of edits) out[1 + (at % (out.length - 1))] = byte;
        return out;
      });
    const frames = fc.oneof(
      fc.array(near, { maxLength: 7 }).map((body) => new Uint8Array([1, ...te.encode(JSON.stringify(body))])),
      damaged,
    );
    fc.assert(
      fc.property(frames, (f) => {
        try {
          decodeSwim(f);
        } catch (e) {
          expect(e).toBeInstanceOf(CodecError);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
