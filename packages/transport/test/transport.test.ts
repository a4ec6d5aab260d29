import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CodecError, NotLeaderError, Protocols, TimeoutError, UnavailableError } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { PEER_KEY_FILE } from '../src/index.js';
import { Cluster, RecordingLogger, addressOf, meshAll, text, utf8, waitFor } from './helpers.js';

let cluster = new Cluster();
afterEach(async () => {
  await cluster.close();
  cluster = new Cluster();
});

function inbox(): { got: string[]; handler: (from: string, frame: Uint8Array) => void } {
  const got: string[] = [];
  return { got, handler: (from, frame) => got.push(`${from}:${text(frame)}`) };
}

describe('libp2p transport', () => {
  it('delivers one-way frames both ways between two nodes, in order on one stream', async () => {
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    const inA = inbox();
    const inB = inbox();
    a.handle(Protocols.raft, inA.handler);
    b.handle(Protocols.raft, inB.handler);
    for (let i = 0; i < 20; i++) await a.send('b', Protocols.raft, utf8(`m${i}`));
    await b.send('a', Protocols.raft, utf8('back'));
    await waitFor('20 frames at b', () => inB.got.length === 20);
    await waitFor('1 frame at a', () => inA.got.length === 1);
    expect(inB.got).toEqual(Array.from({ length: 20 }, (_, i) => `a:m${i}`));
    expect(inA.got).toEqual(['b:back']);
    expect(a.stats().framesSent).toBe(20);
    expect(b.stats().framesReceived).toBe(20);
  });

  it('streams many times the multiplexer window on one stream, in order (window updates keep it flowing)', async () => {
    // 40 frames of 500 KB: 20 MB on one stream, far past yamux's receive window (256 KB, up to
    // 16 MB), which is granted back only once half of it was consumed.
    const a = await cluster.start({ self: 'a', maxFrameBytes: 1024 * 1024 });
    const log = new RecordingLogger();
    const b = await cluster.start({ self: 'b', maxFrameBytes: 1024 * 1024, logger: log });
    meshAll(a, b);
    const seen: number[] = [];
    let bytes = 0;
    b.handle(Protocols.raft, (_from, frame) => {
      seen.push(frame[0] as number);
      bytes += frame.byteLength;
    });
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) sends.push(a.send('b', Protocols.raft, new Uint8Array(500 * 1024).fill(i)));
    await Promise.all(sends);
    await waitFor('40 frames at b', () => seen.length === 40, 20_000);
    expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(bytes).toBe(40 * 500 * 1024);
    expect(log.lines.filter((l) => l.level === 'error' || l.level === 'warn')).toEqual([]);
  });

  it('answers requests, and carries a handler error back as its typed error', async () => {
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    b.handleRequest(Protocols.kv, async (from, frame) => {
      if (text(frame) === 'redirect') throw new NotLeaderError('c', '127.0.0.1:9');
      return utf8(`${from} asked ${text(frame)}`);
    });
    expect(text(await a.request('b', Protocols.kv, utf8('GET k')))).toBe('a asked GET k');
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => a.request('b', Protocols.kv, utf8(`q${i}`))),
    );
    expect(replies.map(text)).toEqual(Array.from({ length: 10 }, (_, i) => `a asked q${i}`));
    const err = await a.request('b', Protocols.kv, utf8('redirect')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotLeaderError);
    expect((err as NotLeaderError).leaderId).toBe('c');
    expect((err as NotLeaderError).leaderAddress).toBe('127.0.0.1:9');
    b.handle(Protocols.swim, () => {});
    await expect(a.request('b', Protocols.swim, utf8('x'))).rejects.toThrow(/no request handler/);
    await expect(a.request('b', Protocols.raft, utf8('x'))).rejects.toThrow(/does not serve/);
  });

  it('multiplexes requests on one stream: responses may come back out of order', async () => {
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    let releaseSlow: (() => void) | undefined;
    const slowHeld = new Promise<void>((r) => {
      releaseSlow = r;
    });
    b.handleRequest(Protocols.kv, async (_from, frame) => {
      if (text(frame) === 'slow') await slowHeld;
      return utf8(`re ${text(frame)}`);
    });
    const order: string[] = [];
    const slow = a.request('b', Protocols.kv, utf8('slow')).then((r) => order.push(text(r)));
    const fast = a.request('b', Protocols.kv, utf8('fast')).then((r) => order.push(text(r)));
    await fast;
    releaseSlow?.();
    await slow;
    expect(order).toEqual(['re fast', 're slow']);
  });

  it('serves at most 256 requests of one stream at once, and the rest after', async () => {
    const a = await cluster.start({ self: 'a', requestTimeoutMs: 20_000 });
    const b = await cluster.start({ self: 'b', requestTimeoutMs: 20_000 });
    meshAll(a, b);
    let running = 0;
    let maxRunning = 0;
    let started = 0;
    const gates: (() => void)[] = [];
    b.handleRequest(Protocols.kv, async (_from, frame) => {
      started++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((r) => gates.push(r));
      running--;
      return frame;
    });
    const all = Promise.all(Array.from({ length: 300 }, (_, i) => a.request('b', Protocols.kv, utf8(`${i}`))));
    await waitFor('256 requests in the handler', () => started >= 256);
    // Each answered request lets exactly one more in.
    for (let k = 1; k <= 44; k++) {
      gates.shift()?.();
      await waitFor(`request ${256 + k} to start`, () => started === 256 + k);
    }
    for (const open of gates.splice(0)) open();
    const replies = await all;
    expect(replies.map(text)).toEqual(Array.from({ length: 300 }, (_, i) => `${i}`));
    expect(maxRunning).toBe(256);
  });

  it('times out a request whose handler does not answer, with a TimeoutError', async () => {
    const a = await cluster.start({ self: 'a', requestTimeoutMs: 300 });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    let release: (() => void) | undefined;
    const held = new Promise<void>((r) => {
      release = r;
    });
    b.handleRequest(Protocols.kv, async () => {
      await held;
      return utf8('late');
    });
    await expect(a.request('b', Protocols.kv, utf8('x'))).rejects.toBeInstanceOf(TimeoutError);
    release?.();
    const controller = new AbortController();
    const aborted = a.request('b', Protocols.kv, utf8('y'), { signal: controller.signal });
    controller.abort(new Error('caller gave up'));
    await expect(aborted).rejects.toThrow(/caller gave up/);
  });

  it('connects three nodes pairwise and keeps one connection per peer', async () => {
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((self) => cluster.start({ self })));
    meshAll(...nodes);
    const boxes = nodes.map(() => inbox());
    nodes.forEach((n, i) => n.handle(Protocols.swim, boxes[i]!.handler));
    for (const n of nodes) {
      for (const m of nodes) if (n !== m) await n.send(m.self, Protocols.swim, utf8(`hi ${m.self}`));
    }
    await waitFor('two frames at every node', () => boxes.every((b) => b.got.length === 2));
    for (const n of nodes) for (const m of nodes) if (n !== m) expect(n.connectionCount(m.self)).toBe(1);
    nodes.forEach((n, i) => {
      expect(boxes[i]!.got.sort()).toEqual(
        nodes
          .filter((m) => m !== n)
          .map((m) => `${m.self}:hi ${n.self}`)
          .sort(),
      );
    });
  });

  it('keeps its peer identity across restarts, in a 0600 key file', async () => {
    const dataDir = await cluster.dir();
    const first = await cluster.start({ self: 'a', dataDir });
    const id = first.peerId;
    await first.stop();
    const second = await cluster.start({ self: 'a', dataDir });
    expect(second.peerId).toBe(id);
    const other = await cluster.start({ self: 'b' });
    expect(other.peerId).not.toBe(id);
    expect((await stat(join(dataDir, PEER_KEY_FILE))).mode & 0o777).toBe(0o600);
  });

  it('refuses to send a frame over its own limit', async () => {
    const a = await cluster.start({ self: 'a', maxFrameBytes: 1024 });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    await expect(a.send('b', Protocols.raft, new Uint8Array(1025))).rejects.toBeInstanceOf(CodecError);
    await expect(a.request('b', Protocols.kv, new Uint8Array(1025))).rejects.toBeInstanceOf(CodecError);
  });

  it('resets the stream of an oversized incoming frame, logs it, and keeps serving the next frame', async () => {
    const logger = new RecordingLogger();
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b', maxFrameBytes: 64 * 1024, logger });
    meshAll(a, b);
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    await a.send('b', Protocols.raft, utf8('before'));
    await waitFor('first frame', () => inB.got.length === 1);
    await a.send('b', Protocols.raft, new Uint8Array(200 * 1024)).catch(() => undefined);
    await waitFor('the oversized frame to be refused', () => b.stats().oversizedFrames === 1);
    expect(logger.at('error').some((m) => m.includes('size limit'))).toBe(true);
    // The broken stream is replaced; frames sent while it closes may be lost, so retry until one lands.
    await waitFor('a frame after the reset', async () => {
      await a.send('b', Protocols.raft, utf8('after')).catch(() => undefined);
      return inB.got.includes('a:after');
    });
    expect(inB.got[0]).toBe('a:before');
    expect(inB.got.some((g) => g.length > 100)).toBe(false);
  });

  it('drops frames from a node it does not know, with a warning', async () => {
    const logger = new RecordingLogger();
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b', logger });
    const stranger = await cluster.start({ self: 'x' });
    meshAll(a, b);
    stranger.addPeer('b', addressOf(b));
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    await stranger.send('b', Protocols.raft, utf8('let me in')).catch(() => undefined);
    await waitFor('the stranger to be refused', () => b.stats().rejectedStreams === 1);
    expect(logger.at('warn').some((m) => m.includes('x is not a known peer'))).toBe(true);
    // It keeps trying: every refusal is counted, the warning is not repeated.
    await waitFor('a second refusal', async () => {
      await stranger.send('b', Protocols.raft, utf8('again')).catch(() => undefined);
      return b.stats().rejectedStreams >= 2;
    });
    expect(logger.at('warn').filter((m) => m.includes('x is not a known peer'))).toHaveLength(1);
    await a.send('b', Protocols.raft, utf8('hello'));
    await waitFor('a frame from a known peer', () => inB.got.length === 1);
    expect(inB.got).toEqual(['a:hello']);
  });

  it('drops frames from a node claiming a known id with another identity', async () => {
    const logger = new RecordingLogger();
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b', logger });
    const impostor = await cluster.start({ self: 'a' });
    b.addPeer('a', `/ip4/127.0.0.1/tcp/${addressOf(a).split(':')[1]}/p2p/${a.peerId}`);
    a.addPeer('b', addressOf(b));
    impostor.addPeer('b', addressOf(b));
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    await impostor.send('b', Protocols.raft, utf8('i am a')).catch(() => undefined);
    await waitFor('the impostor to be refused', () => b.stats().rejectedStreams === 1);
    expect(logger.at('warn').some((m) => m.includes('is known with identity'))).toBe(true);
    await a.send('b', Protocols.raft, utf8('really a'));
    await waitFor('the real a', () => inB.got.length === 1);
    expect(inB.got).toEqual(['a:really a']);
    // b dials a through the pinned /p2p/ address.
    const inA = inbox();
    a.handle(Protocols.raft, inA.handler);
    await b.send('a', Protocols.raft, utf8('to the real a'));
    await waitFor('b to reach a', () => inA.got.length === 1);
  });

  it('pinPeer replaces an identity accepted on first use: the impostor is cut off, the registered node gets through', async () => {
    const logger = new RecordingLogger();
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b', logger });
    const impostor = await cluster.start({ self: 'a' });
    // b knows a by address only: whoever claims 'a' first is accepted.
    b.addPeer('a', addressOf(a));
    a.addPeer('b', addressOf(b));
    impostor.addPeer('b', addressOf(b));
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    await impostor.send('b', Protocols.raft, utf8('first'));
    await waitFor('the impostor accepted on first use', () => inB.got.length === 1);
    // The registry says who 'a' is.
    b.pinPeer('a', a.peerId);
    expect(logger.at('warn').some((m) => m.includes('pins another identity'))).toBe(true);
    await waitFor('the impostor refused', async () => {
      await impostor.send('b', Protocols.raft, utf8('still me')).catch(() => undefined);
      return b.stats().rejectedStreams >= 1;
    });
    await waitFor('the registered a', async () => {
      await a.send('b', Protocols.raft, utf8('the real a')).catch(() => undefined);
      return inB.got.includes('a:the real a');
    });
    expect(inB.got).not.toContain('a:still me');
    // Pinning the same identity again changes nothing; an unknown peer is not admitted by a pin.
    b.pinPeer('a', a.peerId);
    b.pinPeer('z', a.peerId);
    await expect(b.send('z', Protocols.raft, utf8('x'))).rejects.toThrow('z is not a known peer');
  });

  it('refuses a stream addressed to another node id, without taking that node for the real one', async () => {
    const logger = new RecordingLogger();
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b', logger });
    const c = await cluster.start({ self: 'c' });
    b.addPeer('a', addressOf(a));
    a.addPeer('c', addressOf(b)); // a believes c lives at b's address
    b.handle(Protocols.raft, () => {
      throw new Error('must not be called');
    });
    await a.send('c', Protocols.raft, utf8('for c')).catch(() => undefined);
    await waitFor('the misaddressed stream to be refused', () => b.stats().rejectedStreams === 1);
    expect(logger.at('warn').some((m) => m.includes('addressed to c'))).toBe(true);
    // The real c then reaches a: a did not pin b's identity as c's.
    const inA = inbox();
    a.handle(Protocols.raft, inA.handler);
    c.addPeer('a', addressOf(a));
    await c.send('a', Protocols.raft, utf8('the real c'));
    await waitFor('the real c at a', () => inA.got.length === 1);
    expect(inA.got).toEqual(['c:the real c']);
  });

  it('reaches a peer again after it restarts on the same address', async () => {
    const a = await cluster.start({ self: 'a' });
    const bDir = await cluster.dir();
    let b = await cluster.start({ self: 'b', dataDir: bDir });
    const bAddress = addressOf(b);
    meshAll(a, b);
    let inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    await a.send('b', Protocols.raft, utf8('1'));
    await waitFor('first frame', () => inB.got.length === 1);
    await b.stop();
    // Frames may first fail on the broken stream; wait until a redial fails too.
    await waitFor('a dial to fail while b is down', async () => {
      return a.send('b', Protocols.raft, utf8('lost')).then(
        () => false,
        (e: unknown) => e instanceof UnavailableError && /cannot reach|unreachable/.test(e.message),
      );
    });
    b = await cluster.start({ self: 'b', dataDir: bDir, listen: bAddress });
    b.addPeer('a', addressOf(a));
    inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    b.handleRequest(Protocols.kv, async () => utf8('pong'));
    await waitFor('a frame after the restart', async () => {
      await a.send('b', Protocols.raft, utf8('2')).catch(() => undefined);
      return inB.got.includes('a:2');
    });
    await waitFor('a request after the restart', async () => {
      const r = await a.request('b', Protocols.kv, utf8('ping')).catch(() => undefined);
      return r !== undefined && text(r) === 'pong';
    });
    expect(a.stats().dialFailures).toBeGreaterThan(0);
  }, 60_000);

  it('refuses a peer that comes back with a new identity until it is re-added', async () => {
    const a = await cluster.start({ self: 'a' });
    let b = await cluster.start({ self: 'b' });
    const bAddress = addressOf(b);
    meshAll(a, b);
    const inA = inbox();
    a.handle(Protocols.raft, inA.handler);
    await b.send('a', Protocols.raft, utf8('old b'));
    await waitFor('the first frame', () => inA.got.length === 1);
    await b.stop();
    // A fresh data dir: a new key, so a new PeerId under the same NodeId and address.
    b = await cluster.start({ self: 'b', listen: bAddress });
    b.addPeer('a', addressOf(a));
    await waitFor('the new b to be refused', async () => {
      await b.send('a', Protocols.raft, utf8('new b')).catch(() => undefined);
      return a.stats().rejectedStreams >= 1;
    });
    expect(inA.got).toEqual(['b:old b']);
    a.removePeer('b');
    a.addPeer('b', bAddress);
    await waitFor('the new b to be accepted', async () => {
      await b.send('a', Protocols.raft, utf8('new b')).catch(() => undefined);
      return inA.got.includes('b:new b');
    });
  }, 60_000);

  it('drops and counts one-way frames beyond the per-peer queue bound', async () => {
    const a = await cluster.start({ self: 'a', maxQueuedFrames: 2 });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    // All ten are offered before the first stream opens: two fit in the queue.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => a.send('b', Protocols.raft, utf8(`${i}`))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    for (const r of results.filter((r) => r.status === 'rejected')) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(UnavailableError);
    }
    expect(a.stats().framesDropped).toBe(8);
    await waitFor('the two queued frames', () => inB.got.length === 2);
    expect(inB.got).toEqual(['a:0', 'a:1']);
  });

  it('takes an aborted frame back out of the queue', async () => {
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    const controller = new AbortController();
    // Both are queued before the stream opens; the second is withdrawn before it is written.
    const kept = a.send('b', Protocols.raft, utf8('kept'));
    const withdrawn = a.send('b', Protocols.raft, utf8('withdrawn'), { signal: controller.signal });
    controller.abort(new Error('no longer needed'));
    await expect(withdrawn).rejects.toThrow(/no longer needed/);
    await kept;
    await a.send('b', Protocols.raft, utf8('last'));
    await waitFor('two frames', () => inB.got.length === 2);
    expect(inB.got).toEqual(['a:kept', 'a:last']);
    const already = new AbortController();
    already.abort(new Error('too late'));
    await expect(a.send('b', Protocols.raft, utf8('x'), { signal: already.signal })).rejects.toThrow(/too late/);
  });

  it('bounds the queue by bytes as well as by frames', async () => {
    const a = await cluster.start({ self: 'a', maxQueuedBytes: 1000 });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    const big = new Uint8Array(600).fill(120);
    // Offered before the stream opens: the first fits, the second would pass 1000 bytes.
    const results = await Promise.allSettled([a.send('b', Protocols.raft, big), a.send('b', Protocols.raft, big)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect(a.stats().framesDropped).toBe(1);
    await waitFor('the queued frame', () => inB.got.length === 1);
  });

  it('rejects sends to an unknown peer with an actionable error', async () => {
    const a = await cluster.start({ self: 'a' });
    await expect(a.send('zz', Protocols.raft, utf8('x'))).rejects.toThrow(/addPeer/);
    await expect(a.request('zz', Protocols.kv, utf8('x'))).rejects.toThrow(/addPeer/);
  });

  it('forgets a removed peer both ways, even on a stream opened before', async () => {
    const a = await cluster.start({ self: 'a' });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    await a.send('b', Protocols.raft, utf8('1'));
    await waitFor('the first frame', () => inB.got.length === 1);
    b.removePeer('a');
    await expect(b.send('a', Protocols.raft, utf8('x'))).rejects.toThrow(/not a known peer/);
    await a.send('b', Protocols.raft, utf8('2')).catch(() => undefined);
    await waitFor('the open stream from a to be reset', () => b.stats().rejectedStreams === 1);
    await waitFor('a new stream from a to be refused', async () => {
      await a.send('b', Protocols.raft, utf8('3')).catch(() => undefined);
      return b.stats().rejectedStreams >= 2;
    });
    expect(inB.got).toEqual(['a:1']);
  });
});
