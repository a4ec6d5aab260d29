import { type GroupMessage, encodeRaftBatch } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { estimatedSize, packBySize } from '../../src/host/frame-packing.js';
import { newMessage } from '../../src/message.js';

const append = (i: number, entries: number, bytes: number): GroupMessage => ({
  group: 'p0',
  message: newMessage({
    type: 'app',
    from: 'n1',
    to: 'n2',
    term: 2 ** 40,
    index: 2 ** 45 + i,
    logTerm: 2 ** 40,
    commit: 2 ** 45,
    entries: Array.from({ length: entries }, (_, k) => ({
      index: 2 ** 45 + i * entries + k,
      term: 2 ** 40,
      type: 'normal' as const,
      data: new Uint8Array(bytes),
    })),
  }),
});

describe("packing one peer's messages into frames", () => {
  it('estimates no less than the encoded size', () => {
    for (const gm of [append(0, 0, 0), append(1, 1, 1), append(2, 300, 7), append(3, 3, 100_000)]) {
      expect(estimatedSize(gm)).toBeGreaterThanOrEqual(encodeRaftBatch([gm], { maxBytes: 1 << 30 }).length);
    }
  });

  it('keeps the order and fits every pack of several messages in the frame limit', () => {
    const list = Array.from({ length: 40 }, (_, i) => append(i, 10, 1000 * (i % 7)));
    const max = 64 * 1024;
    const packs = packBySize(list, max);
    expect(packs.flat()).toEqual(list);
    expect(packs.length).toBeGreaterThan(1);
    for (const p of packs) {
      const size = encodeRaftBatch(p, { maxBytes: 1 << 30 }).length;
      if (p.length > 1) expect(size).toBeLessThanOrEqual(max);
    }
  });
});
