import { CodecError, SeededRandom, UnavailableError } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { RequestIds, Scheduler, SimClock, type SimFrame, SimNetwork, SimTransport } from '../src/index.js';

function setup(faults = {}) {
  const s = new Scheduler();
  const net = new SimNetwork<SimFrame>(s, new SeededRandom(5), { minDelay: 1, maxDelay: 5, ...faults });
  const ids = new RequestIds();
  const clock = new SimClock(s);
  const a = new SimTransport('a', net, clock, ids, { requestTimeoutMs: 100, maxFrameBytes: 64 });
  const b = new SimTransport('b', net, clock, ids, { requestTimeoutMs: 100, maxFrameBytes: 64 });
  return { s, net, a, b };
}

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);

describe('SimTransport', () => {
  it('delivers one-way frames to the protocol handler with the sender id', async () => {
    const { s, a, b } = setup();
    const got: [string, number[]][] = [];
    b.handle('/p/1', (from, f) => got.push([from, [...f]]));
    await a.send('b', '/p/1', bytes(1, 2));
    await s.runUntilAsync(10);
    expect(got).toEqual([['a', [1, 2]]]);
  });

  it('answers a request with the handler response, in simulated time', async () => {
    const { s, a, b } = setup();
    b.handleRequest('/echo/1', async (_from, f) => Uint8Array.from([...f].reverse()));
    let answer: number[] | undefined;
    a.request('b', '/echo/1', bytes(1, 2, 3)).then((r) => {
      answer = [...r];
    });
    await s.runUntilAsync(20);
    expect(answer).toEqual([3, 2, 1]);
  });

  it('fails a request whose request or reply is lost after its timeout, on the simulated clock', async () => {
    const { s, a, b } = setup({ dropRate: 1 });
    b.handleRequest('/echo/1', async (_from, f) => f);
    let failedAt = -1;
    a.request('b', '/echo/1', bytes(1)).catch((err: unknown) => {
      expect(err).toBeInstanceOf(UnavailableError);
      failedAt = s.now();
    });
    await s.runUntilAsync(1_000);
    expect(failedAt).toBe(100);
  });

  it('rejects a send to a cut link or a down peer, and frames over maxFrameBytes', async () => {
    const { net, a, b } = setup();
    net.cutOneWay('a', 'b');
    await expect(a.send('b', '/p/1', bytes(1))).rejects.toBeInstanceOf(UnavailableError);
    net.heal();
    await b.stop();
    await expect(a.send('b', '/p/1', bytes(1))).rejects.toBeInstanceOf(UnavailableError);
    await expect(a.send('c', '/p/1', new Uint8Array(65))).rejects.toBeInstanceOf(CodecError);
    await expect(a.request('c', '/p/1', new Uint8Array(65))).rejects.toBeInstanceOf(CodecError);
  });

  it('duplicates one-way frames but delivers a request at most once unless asked to', async () => {
    const { s, a, b } = setup({ dupRate: 1 });
    let frames = 0;
    let requests = 0;
    b.handle('/p/1', () => {
      frames++;
    });
    b.handleRequest('/r/1', async (_from, f) => {
      requests++;
      return f;
    });
    await a.send('b', '/p/1', bytes(1));
    const answered = a.request('b', '/r/1', bytes(1));
    await s.runUntilAsync(50);
    await expect(answered).resolves.toEqual(bytes(1));
    expect(frames).toBe(2);
    expect(requests).toBe(1);
  });

  it('a crashed endpoint answers nothing and never settles what it waited for', async () => {
    const { s, a, b } = setup();
    b.handleRequest('/r/1', async (_from, f) => f);
    let settled = false;
    a.request('b', '/r/1', bytes(1)).then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    a.crash();
    await s.runUntilAsync(1_000);
    expect(settled).toBe(false);
  });
});
