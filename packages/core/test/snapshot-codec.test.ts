import { describe, expect, it } from 'vitest';
import {
  CodecError,
  type SnapshotAck,
  type SnapshotChunk,
  decodeForwardRequest,
  decodeSnapshotAck,
  decodeSnapshotChunk,
  emptyConfState,
  encodeSnapshotAck,
  encodeSnapshotChunk,
} from '../src/index.js';

const first: SnapshotChunk = {
  group: 'p0',
  leader: 'a',
  term: 7,
  index: 1234,
  seq: 0,
  data: new Uint8Array([1, 2, 3]),
  last: false,
  meta: { index: 1234, term: 6, confState: { ...emptyConfState(), voters: ['a', 'b', 'c'], learners: ['d'] } },
};

describe('snapshot streaming codec', () => {
  it('round-trips the first chunk with its meta and later chunks without', () => {
    expect(decodeSnapshotChunk(encodeSnapshotChunk(first))).toEqual(first);
    const { meta: _meta, ...rest } = first;
    const later: SnapshotChunk = { ...rest, seq: 5, last: true, data: new Uint8Array(1000).fill(9) };
    expect(decodeSnapshotChunk(encodeSnapshotChunk(later))).toEqual(later);
  });

  it('round-trips every acknowledgement', () => {
    const acks: SnapshotAck[] = [
      { status: 'next', nextSeq: 3 },
      { status: 'installed' },
      { status: 'unknownTransfer' },
      { status: 'refused', reason: 'stale term 3, the follower is at 4' },
    ];
    for (const a of acks) expect(decodeSnapshotAck(encodeSnapshotAck(a))).toEqual(a);
  });

  it('refuses chunk 0 without meta, and frames over the size limit', () => {
    const { meta: _meta, ...noMeta } = first;
    expect(() => decodeSnapshotChunk(encodeSnapshotChunk(noMeta))).toThrow(/carries no snapshot meta/);
    const big = { ...first, data: new Uint8Array(2048) };
    expect(() => encodeSnapshotChunk(big, { maxBytes: 1024 })).toThrow(CodecError);
    const frame = encodeSnapshotChunk(big);
    expect(() => decodeSnapshotChunk(frame, { maxBytes: 1024 })).toThrow(CodecError);
  });

  it('refuses negative or fractional positions, and frames of another kind', () => {
    expect(() => encodeSnapshotChunk({ ...first, seq: -1 })).toThrow(CodecError);
    expect(() => encodeSnapshotChunk({ ...first, index: 1.5 })).toThrow(CodecError);
    expect(() => decodeForwardRequest(encodeSnapshotChunk(first))).toThrow(/carries snapshotChunk/);
    expect(() => decodeSnapshotAck(encodeSnapshotChunk(first))).toThrow(CodecError);
  });

  it('refuses every truncation of a chunk with a CodecError', () => {
    const frame = encodeSnapshotChunk(first);
    for (let n = 0; n < frame.length; n++) expect(() => decodeSnapshotChunk(frame.subarray(0, n))).toThrow(CodecError);
  });
});
