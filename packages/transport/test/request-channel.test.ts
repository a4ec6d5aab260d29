import { UnavailableError } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { FramedStream } from '../src/frame-sender.js';
import { RequestChannel } from '../src/request-channel.js';

/** A stream whose reads and writes settle when the test says. */
function fakeStream(): {
  stream: FramedStream;
  closeRead: (err: Error) => void;
  failWrite: (err: Error) => void;
  aborted: () => boolean;
} {
  let closeRead: (err: Error) => void = () => {};
  let failWrite: (err: Error) => void = () => {};
  let aborted = false;
  const read = new Promise<never>((_, reject) => {
    closeRead = reject;
  });
  const write = new Promise<never>((_, reject) => {
    failWrite = reject;
  });
  const stream = {
    raw: {
      writeStatus: 'writable',
      abort: () => {
        aborted = true;
      },
    },
    lp: { read: () => read, write: () => write },
  } as unknown as FramedStream;
  return { stream, closeRead, failWrite, aborted: () => aborted };
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
process.on('unhandledRejection', onUnhandled);
afterEach(() => {
  unhandled.length = 0;
});

describe('RequestChannel', () => {
  it('fails a request whose stream closes while its write is pending, with no unhandled rejection', async () => {
    const f = fakeStream();
    const channel = new RequestChannel('n1', async () => f.stream);
    const req = channel.request(new Uint8Array([1, 2, 3]), new AbortController().signal);
    const outcome = req.then(
      () => 'answered',
      (err: Error) => err,
    );
    // Let the request reach its write, then the stream closes under it: every waiter is rejected at once,
    // before the request got past its write.
    await new Promise((r) => setImmediate(r));
    f.closeRead(new Error('Unexpected EOF - stream closed while reading 0/1 bytes'));
    await new Promise((r) => setImmediate(r));
    f.failWrite(new Error('stream closed'));
    const err = await outcome;
    expect(err).toBeInstanceOf(Error);
    expect(f.aborted()).toBe(true);
    // Unhandled rejections are reported after the microtasks of a turn: give them two turns.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(unhandled).toEqual([]);
  });

  it('answers UnavailableError to the requests waiting on a stream that closed', async () => {
    const f = fakeStream();
    const channel = new RequestChannel('n1', async () => f.stream);
    channel.close();
    await expect(channel.request(new Uint8Array([1]), new AbortController().signal)).rejects.toBeInstanceOf(
      UnavailableError,
    );
    expect(unhandled).toEqual([]);
  });
});
