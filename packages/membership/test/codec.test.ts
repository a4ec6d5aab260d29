import { CodecError, SeededRandom } from '@cohort/core';
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
});
