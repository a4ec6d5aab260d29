import { MemoryHub, type NodeId, SeededRandom, systemClock } from '@cohort/core';
import { RaftHost } from '@cohort/raft';
import { MemoryNodeStore } from '@cohort/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { KvReplica, type KvRequest, KvService } from '../src/index.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const IDS = ['a', 'b', 'c'];

interface Node {
  host: RaftHost;
  service: KvService;
  replica: KvReplica;
}

let nodes = new Map<NodeId, Node>();
let hub = new MemoryHub();

function startCluster(): void {
  hub = new MemoryHub();
  nodes = new Map();
  IDS.forEach((id, i) => {
    const transport = hub.transport(id);
    const host = new RaftHost({
      id,
      store: new MemoryNodeStore(),
      transport,
      clock: systemClock,
      random: new SeededRandom(7 + i),
      tickMs: 10,
      electionTicks: 5,
    });
    const replica = new KvReplica();
    host.addGroup('p0', replica, IDS);
    host.start();
    const service = new KvService({
      group: host.replicated('p0'),
      replica,
      transport,
      clock: systemClock,
      requestTimeoutMs: 1500,
    });
    service.start();
    nodes.set(id, { host, service, replica });
  });
}

afterEach(() => {
  for (const n of nodes.values()) n.host.stop();
});

async function leader(among = IDS): Promise<NodeId> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const l = among.find((id) => nodes.get(id)!.host.isLeader('p0'));
    if (l) return l;
    if (Date.now() > deadline) throw new Error('no leader elected in 5 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const set = (k: string, v: string): KvRequest => ({
  kind: 'write',
  command: { op: 'set', key: b(k), value: b(v), condition: 'always', expiresAt: 0, returnOld: false, now: Date.now() },
});
const get = (k: string): KvRequest => ({ kind: 'read', op: 'get', keys: [b(k)], now: Date.now() });

describe('KvService', () => {
  it('serves writes and linearizable reads through any node, followers forwarding to the leader', async () => {
    startCluster();
    const l = await leader();
    const followers = IDS.filter((id) => id !== l);
    expect(await nodes.get(followers[0]!)!.service.execute(set('x', '1'))).toEqual({ type: 'ok' });
    // The read through the other follower sees the write (it is linearizable, not a local stale read).
    expect(await nodes.get(followers[1]!)!.service.execute(get('x'))).toEqual({ type: 'bulk', value: b('1') });
    expect(await nodes.get(l)!.service.execute(get('missing'))).toEqual({ type: 'nil' });
    const del: KvRequest = { kind: 'write', command: { op: 'del', keys: [b('x'), b('y')], now: Date.now() } };
    expect(await nodes.get(followers[1]!)!.service.execute(del)).toEqual({ type: 'int', value: 1n });
  });

  it('keeps serving after the leader is cut off, through the new leader', async () => {
    startCluster();
    const old = await leader();
    const first = IDS.find((id) => id !== old)!;
    expect(await nodes.get(first)!.service.execute(set('k', 'v1'))).toEqual({ type: 'ok' });
    hub.down.add(old);
    const rest = IDS.filter((id) => id !== old);
    // A read sent while the election runs retries until a leader answers.
    expect(await nodes.get(first)!.service.execute(get('k'))).toEqual({ type: 'bulk', value: b('v1') });
    expect(await leader(rest)).not.toBe(old);
    expect(await nodes.get(first)!.service.execute(set('k', 'v2'))).toEqual({ type: 'ok' });
    expect(await nodes.get(rest[1]!)!.service.execute(get('k'))).toEqual({ type: 'bulk', value: b('v2') });
  });

  it('answers a failure with a code, not an exception, when no quorum can be reached', async () => {
    startCluster();
    const l = await leader();
    for (const id of IDS) if (id !== l) hub.down.add(id);
    const res = await nodes.get(l)!.service.execute(set('z', '1'));
    expect(res.type).toBe('failure');
    expect(res.type === 'failure' && ['TIMEOUT', 'NOT_LEADER'].includes(res.code)).toBe(true);
  });
});
