import { CodecError } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { decodeMasterMessage, decodeMessage, encodeMasterMessage, encodeMessage } from '../src/codec.js';
import type { MasterMessage } from '../src/codec.js';
import type { Message } from '../src/types.js';

const v = new Uint8Array([1, 2, 3]);

describe('codec', () => {
  it('round-trips every message', () => {
    const msgs: Message[] = [
      { type: 'p1a', ballot: 3, prevBallot: 2, from: 7 },
      { type: 'p1b', ballot: 3, votes: [{ slot: 7, ballot: 2, value: v, chosen: false }], compacted: 0 },
      { type: 'p1b', ballot: 3, votes: [{ slot: 9, ballot: 2, value: v, chosen: false }], compacted: 8 },
      { type: 'p2a', ballot: 3, entries: [{ slot: 8, value: v }], commit: 6, round: 4 },
      { type: 'p2b', ballot: 3, match: 8, round: 4 },
      { type: 'reject', ballot: 3, maxBallot: 5 },
      { type: 'catchUpReq', ballot: 3, from: 1 },
      { type: 'catchUpResp', ballot: 3, votes: [{ slot: 1, ballot: 1, value: v, chosen: true }] },
    ];
    for (const m of msgs) expect(decodeMessage(encodeMessage('g', m))).toEqual({ group: 'g', msg: m });
    const masters: MasterMessage[] = [
      { type: 'newBallot', ballot: 2, prevBallot: 1, prevAcceptors: ['a', 'b'], acceptors: ['b', 'c'] },
      { type: 'complete', ballot: 2 },
      { type: 'activated', ballot: 2, primary: 'b', acceptors: ['b', 'c'] },
      { type: 'activated', ballot: 3, primary: 'c', acceptors: ['c'], leaseMs: 900 },
      { type: 'alive', incarnation: 4, activeBallot: 0 },
    ];
    for (const m of masters) expect(decodeMasterMessage(encodeMasterMessage('g', m))).toEqual({ group: 'g', msg: m });
  });

  it('refuses truncated, trailing, unknown-type and other-version frames with CodecError', () => {
    const f = encodeMessage('g', { type: 'p2b', ballot: 3, match: 8, round: 4 });
    expect(() => decodeMessage(f.subarray(0, f.length - 1))).toThrow(CodecError);
    expect(() => decodeMessage(new Uint8Array([...f, 0]))).toThrow(CodecError);
    const other = f.slice();
    other[0] = 9;
    expect(() => decodeMessage(other)).toThrow(/wire version 9/);
    const bad = f.slice();
    bad[1 + 8 + 1] = 200;
    expect(() => decodeMessage(bad)).toThrow(CodecError);
  });
});
