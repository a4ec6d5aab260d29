import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Protocols, decodeForwardResponse } from '@cohort/core';
import { DIGEST_PROTOCOL, decodeResponse } from '@cohort/kv';
import { type Libp2pTransport, createLibp2pTransport } from '@cohort/transport';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster, poll, redisClient } from './helpers/processes.js';

let cluster: ProcCluster | undefined;
let impostor: Libp2pTransport | undefined;
const dir = mkdtempSync(join(tmpdir(), 'cohort-garbage-'));
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await impostor?.stop();
  await cluster?.killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `bytes` on a fresh RESP connection and resolves with what the node answered once it closed it (or 2 s passed). */
function sendRaw(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = (): void => {
      s.destroy();
      resolve(got);
    };
    s.on('data', (d) => {
      got += d.toString('latin1');
    });
    s.on('close', done);
    s.on('error', done);
    s.setTimeout(2000, done);
    s.write(bytes);
  });
}

describe('garbage from clients and peers', () => {
  it('a node answered garbage on RESP and on its Raft, SWIM and forwarding streams keeps serving, and loses nothing', async () => {
    // Three members configured, two started: the third's id is free for a process that claims it.
    cluster = await ProcCluster.create(3);
    const [n1, n2, n3] = cluster.nodes as [
      NonNullable<ProcCluster['nodes'][0]>,
      ProcCluster['nodes'][0],
      ProcCluster['nodes'][0],
    ];
    cluster.start(n1);
    cluster.start(n2!);
    await cluster.leader([n1, n2!], 30_000);
    const c1 = redisClient(n1, clients);
    await c1.set('before', 'kept');

    // A connection that breaks the protocol is answered an error and closed; another client is served meanwhile.
    const answers = await Promise.all([
      sendRaw(n1.resp, Buffer.concat([Buffer.from('*2\r\n$3\r\nGET\r\n$-7\r\n'), randomBytes(64)])),
      sendRaw(n1.resp, Buffer.from('*99999999999\r\n')),
      sendRaw(n1.resp, Buffer.concat([Buffer.from('$'), randomBytes(4096)])),
      c1.set('during', 'ok'),
    ]);
    expect(answers[0]).toMatch(/^-ERR Protocol error/);
    expect(answers[1]).toMatch(/^-ERR Protocol error/);
    expect(answers[3]).toBe('OK');

    // A process claiming the free member id sends damaged frames on every peer protocol.
    impostor = createLibp2pTransport({ self: n3!.id, listen: '127.0.0.1:0', dataDir: join(dir, 'impostor') });
    await impostor.start();
    impostor.addPeer(n1.id, `127.0.0.1:${n1.peer}`);
    const oneWay = [Protocols.raft, Protocols.swim];
    const requests = [Protocols.snapshot, Protocols.snapshotPull, DIGEST_PROTOCOL];
    for (let i = 0; i < 40; i++) {
      const frame = randomBytes(1 + ((i * 37) % 600));
      // A leading version byte reaches past the first check of the SWIM and envelope decoders.
      if (i % 2 === 0) frame[0] = 1;
      for (const p of oneWay) await impostor.send(n1.id, p, frame).catch(() => {});
      // Requests are answered with an error (a CODEC failure, or the stream reset), never served.
      const answer = await impostor.request(n1.id, Protocols.kv, frame).then(
        (bytes) => {
          // The KV service's own answer inside the transport's: a forward response around a KV response.
          const fwd = decodeForwardResponse(bytes);
          return fwd.ok ? decodeResponse(fwd.result) : fwd;
        },
        (err: Error) => err,
      );
      if (!(answer instanceof Error)) expect(answer).toMatchObject({ code: 'CODEC' });
      // Snapshot transfers and digest requests: refused one way or another, and the node goes on.
      for (const p of requests) await impostor.request(n1.id, p, frame).catch(() => {});
    }

    // The frames reached the decoders (the hello let them through) and were dropped there.
    await poll('the node to log the frames it dropped', 5000, async () =>
      /dropped an undecodable raft frame/.test(n1.log) && /dropped a bad membership frame/.test(n1.log)
        ? true
        : undefined,
    );
    // The node is alive, commits with its peer and reads back every write acknowledged before.
    expect(n1.child?.exitCode).toBeNull();
    expect(n1.child?.signalCode).toBeNull();
    await poll('a write after the garbage', 10_000, async () =>
      (await c1.set('after', 'ok').catch(() => undefined)) === 'OK' ? true : undefined,
    );
    expect(await c1.mget('before', 'during', 'after')).toEqual(['kept', 'ok', 'ok']);
    const c2 = redisClient(n2!, clients);
    expect(await c2.get('before')).toBe('kept');
    expect(n1.log).not.toMatch(/"level":(50|60)|uncaught|unhandled/i);
  }, 60_000);
});
