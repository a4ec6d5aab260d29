import { type SnapshotMeta, decodeSnapshotAck, encodeSnapshotChunk, silentLogger, systemClock } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { VpSnapshotReceiver } from '../src/host/snapshot-stream.js';

const meta: SnapshotMeta = {
  index: 7,
  term: 1,
  confState: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
};

function receiver(): { r: VpSnapshotReceiver; written: number[]; installed: number[] } {
  const written: number[] = [];
  const installed: number[] = [];
  let applied = 0;
  const r = new VpSnapshotReceiver({
    group: 'g',
    clock: systemClock,
    logger: silentLogger,
    maxFrameBytes: 1 << 20,
    idleMs: 10_000,
    target: {
      promised: () => 2,
      applied: () => applied,
      receive: () => ({
        write: (seq) => written.push(seq),
        commit: () => {
          applied = meta.index;
        },
        abort: () => {},
      }),
      installed: (index) => installed.push(index),
    },
  });
  return { r, written, installed };
}

const chunk = (seq: number, last: boolean) =>
  encodeSnapshotChunk({
    group: 'g',
    leader: 'a',
    term: 2,
    index: meta.index,
    seq,
    data: new Uint8Array([seq]),
    last,
    ...(seq === 0 ? { meta } : {}),
  });

describe('VpSnapshotReceiver', () => {
  it('writes chunks in order, answers a duplicate or a gap with the chunk it expects, and a resent last chunk with installed', () => {
    const { r, written, installed } = receiver();
    const ack = (frame: Uint8Array) => decodeSnapshotAck(r.handle('a', frame));
    expect(ack(chunk(0, false))).toEqual({ status: 'next', nextSeq: 1 });
    expect(ack(chunk(0, false))).toEqual({ status: 'next', nextSeq: 1 });
    expect(ack(chunk(2, true))).toEqual({ status: 'next', nextSeq: 1 });
    expect(ack(chunk(1, false))).toEqual({ status: 'next', nextSeq: 2 });
    expect(ack(chunk(2, true))).toEqual({ status: 'installed' });
    // The answer to the last chunk was lost and the primary sends it again: the same answer, nothing written.
    expect(ack(chunk(2, true))).toEqual({ status: 'installed' });
    expect(written).toEqual([0, 1, 2]);
    expect(installed).toEqual([7]);
    // A chunk of a transfer never started here (another sender) is unknown: the sender starts over.
    const stray = encodeSnapshotChunk({
      group: 'g',
      leader: 'b',
      term: 2,
      index: 7,
      seq: 1,
      data: new Uint8Array(1),
      last: false,
    });
    expect(decodeSnapshotAck(r.handle('b', stray))).toEqual({ status: 'unknownTransfer' });
  });
});
