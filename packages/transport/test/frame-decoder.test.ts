import { CodecError } from '@cohort/core';
import * as varint from 'uint8-varint';
import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../src/frame-decoder.js';

function encode(frames: Uint8Array[]): Uint8Array {
  const parts = frames.flatMap((f) => [varint.encode(f.byteLength), f]);
  return Buffer.concat(parts);
}

describe('FrameDecoder', () => {
  const frames = [
    new Uint8Array(0),
    new Uint8Array(1).fill(1),
    new Uint8Array(300).fill(2),
    new Uint8Array(70_000).fill(3),
  ];
  const bytes = encode(frames);

  it('gives back every frame, in order, whatever the chunk boundaries', () => {
    for (const size of [1, 2, 3, 7, 128, 129, 4096, bytes.byteLength]) {
      const got: Uint8Array[] = [];
      const d = new FrameDecoder(100_000, (f) => got.push(f));
      for (let i = 0; i < bytes.byteLength; i += size) d.push(bytes.subarray(i, i + size));
      expect(got.map((f) => [f.byteLength, f[0]])).toEqual(frames.map((f) => [f.byteLength, f[0]]));
      expect(d.buffered).toBe(0);
    }
  });

  it('hands a frame out as soon as its last byte arrives, holding only the partial one', () => {
    const got: number[] = [];
    const d = new FrameDecoder(1000, (f) => got.push(f.byteLength));
    const two = encode([new Uint8Array(10), new Uint8Array(20)]);
    d.push(two.subarray(0, 13));
    expect(got).toEqual([10]);
    expect(d.buffered).toBe(1);
    d.push(two.subarray(13));
    expect(got).toEqual([10, 20]);
  });

  it('refuses a length over the limit as soon as the prefix arrives, before the body', () => {
    const d = new FrameDecoder(1000, () => {});
    expect(() => d.push(varint.encode(1001))).toThrow(CodecError);
    expect(() => new FrameDecoder(1000, () => {}).push(varint.encode(1001))).toThrow(
      /1001 bytes exceeds maxFrameBytes \(1000\)/,
    );
  });

  it('refuses a length prefix that never ends', () => {
    const d = new FrameDecoder(1000, () => {});
    expect(() => d.push(new Uint8Array(5).fill(0xff))).toThrow(/malformed frame length prefix/);
  });
});
