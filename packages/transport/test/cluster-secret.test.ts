import { ConfigError, Protocols } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterSecretFromText } from '../src/index.js';
import { Cluster, addressOf, meshAll, text, utf8, waitFor } from './helpers.js';

let cluster = new Cluster();
afterEach(async () => {
  await cluster.close();
  cluster = new Cluster();
});

const SECRET = clusterSecretFromText('correct horse battery staple, the cluster secret');
const OTHER = clusterSecretFromText('another cluster secret entirely');

function inbox(): { got: string[]; handler: (from: string, frame: Uint8Array) => void } {
  const got: string[] = [];
  return { got, handler: (from, frame) => got.push(`${from}:${text(frame)}`) };
}

describe('cluster secret (libp2p private network)', () => {
  it('connects nodes that share the secret', async () => {
    const a = await cluster.start({ self: 'a', clusterSecret: SECRET });
    const b = await cluster.start({ self: 'b', clusterSecret: SECRET });
    meshAll(a, b);
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    await a.send('b', Protocols.raft, utf8('hello'));
    await waitFor('the frame at b', () => inB.got.length === 1);
    expect(inB.got).toEqual(['a:hello']);
  });

  it('refuses a node with the wrong secret, or none, both ways: nothing reaches a handler', async () => {
    const a = await cluster.start({ self: 'a', clusterSecret: SECRET, requestTimeoutMs: 1500 });
    const wrong = await cluster.start({ self: 'w', clusterSecret: OTHER, requestTimeoutMs: 1500 });
    const plain = await cluster.start({ self: 'p', requestTimeoutMs: 1500 });
    const inA = inbox();
    a.handle(Protocols.raft, inA.handler);
    a.handleRequest(Protocols.kv, async () => utf8('served'));
    meshAll(a, wrong);
    meshAll(a, plain);
    for (const t of [wrong, plain]) {
      await expect(t.request('a', Protocols.kv, utf8('let me in'))).rejects.toThrow();
      await t.send('a', Protocols.raft, utf8('let me in')).catch(() => undefined);
    }
    await expect(a.request('w', Protocols.kv, utf8('x'))).rejects.toThrow();
    await waitFor('dials to fail', () => wrong.stats().dialFailures > 0 && plain.stats().dialFailures > 0);
    expect(inA.got).toEqual([]);
    expect(a.connectionCount('w')).toBe(0);
    expect(a.connectionCount('p')).toBe(0);
  });

  it('refuses an impostor claiming a member id without the secret, and keeps serving the real one', async () => {
    const a = await cluster.start({ self: 'a', clusterSecret: SECRET });
    const b = await cluster.start({ self: 'b', clusterSecret: SECRET });
    const impostor = await cluster.start({ self: 'b', clusterSecret: OTHER, requestTimeoutMs: 1500 });
    meshAll(a, b);
    impostor.addPeer('a', addressOf(a));
    const inA = inbox();
    a.handle(Protocols.raft, inA.handler);
    await impostor.send('a', Protocols.raft, utf8('i am b')).catch(() => undefined);
    await waitFor('the impostor dial to fail', () => impostor.stats().dialFailures > 0);
    await b.send('a', Protocols.raft, utf8('really b'));
    await waitFor('the real b', () => inA.got.length === 1);
    expect(inA.got).toEqual(['b:really b']);
  });

  it('lets gossip move an admitted peer but not admit a new one', async () => {
    const a = await cluster.start({ self: 'a', clusterSecret: SECRET });
    const b = await cluster.start({ self: 'b', clusterSecret: SECRET });
    const stranger = await cluster.start({ self: 's', clusterSecret: SECRET });
    a.handle(Protocols.raft, () => {});
    const gossip = a.forGossip();
    gossip.addPeer('s', addressOf(stranger));
    expect(a.stats().gossipRefused).toBe(1);
    await expect(a.send('s', Protocols.raft, utf8('x'))).rejects.toThrow(/not a known peer/);
    // Frames from the stranger are refused too: gossip did not make it known.
    stranger.addPeer('a', addressOf(a));
    await stranger.send('a', Protocols.raft, utf8('hi')).catch(() => undefined);
    await waitFor('the stranger refused', () => a.stats().rejectedStreams >= 1);
    a.addPeer('b', '127.0.0.1:1');
    gossip.addPeer('b', addressOf(b));
    b.addPeer('a', addressOf(a));
    const inB = inbox();
    b.handle(Protocols.raft, inB.handler);
    await a.send('b', Protocols.raft, utf8('moved'));
    await waitFor('b at its gossiped address', () => inB.got.length === 1);
  });

  it('takes a swarm key as it is, or hashes another secret, and refuses a short one', () => {
    const swarm = '/key/swarm/psk/1.0.0/\n/base16/\n' + 'ab'.repeat(32);
    expect(new TextDecoder().decode(clusterSecretFromText(`${swarm}\n`))).toBe(swarm);
    expect(clusterSecretFromText('  same secret, spaces trimmed \n')).toEqual(
      clusterSecretFromText('same secret, spaces trimmed'),
    );
    expect(() => clusterSecretFromText('short', 'secret.txt')).toThrow(ConfigError);
    expect(() => clusterSecretFromText('short', 'secret.txt')).toThrow(/secret.txt holds 5 characters/);
  });
});
