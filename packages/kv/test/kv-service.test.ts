import {
  type NodeId,
  ProposalDroppedError,
  type ProtocolId,
  Protocols,
  type ReplicatedGroup,
  SeededRandom,
  decodeForwardRequest,
  decodeForwardResponse,
  encodeForwardRequest,
  encodeForwardResponse,
  systemClock,
} from '@cohort/core';
import { MemoryHub } from '@cohort/core/testing';
import { RaftHost } from '@cohort/raft';
import { MemoryNodeStore } from '@cohort/storage';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type KvClientRequest,
  type KvResponse,
  KvService,
  type KvServiceOptions,
  KvStateMachine,
  MAX_FORWARD_HOPS,
  decodeCommand,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from '../src/index.js';
import { setCmd } from './harness.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const IDS = ['a', 'b', 'c'];

interface Node {
  host: RaftHost;
  service: KvService;
  machine: KvStateMachine;
}

let nodes = new Map<NodeId, Node>();
let hub = new MemoryHub();

/** Each node's wall clock: real time plus a per-node offset the test may change. */
const offsets = new Map<NodeId, number>();
/** Each node's partition epoch (0: forwards not fenced). */
const epochs = new Map<NodeId, number>();

/** Starts the three nodes; `timeouts` are the hosts' proposal and read timeout and the services' request timeout. */
function startCluster(timeouts: { hostMs?: number; serviceMs?: number } = {}): void {
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
      ...(timeouts.hostMs !== undefined ? { requestTimeoutMs: timeouts.hostMs } : {}),
    });
    const machine = new KvStateMachine();
    host.addGroup('p0', machine, IDS);
    host.start();
    const service = new KvService({
      group: host.replicated('p0'),
      machine,
      transport,
      clock: systemClock,
      requestTimeoutMs: timeouts.serviceMs ?? 1500,
      wallClock: () => Date.now() + (offsets.get(id) ?? 0),
      epoch: () => epochs.get(id) ?? 0,
    });
    service.start();
    nodes.set(id, { host, service, machine });
  });
}

afterEach(() => {
  for (const n of nodes.values()) n.host.stop();
  offsets.clear();
  epochs.clear();
});

async function leader(among = IDS): Promise<NodeId> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const l = among.find((id) => nodes.get(id)!.host.isLeader('p0'));
    // Elected, and every other node of `among` running has heard of it (a follower forwards to it).
    if (l && among.every((id) => id === l || !nodes.has(id) || nodes.get(id)!.host.status('p0').leader === l)) return l;
    if (Date.now() > deadline) throw new Error('no leader elected in 5 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The group as a node holding no replica of it sees it: every request goes to `leader()`. */
function noReplica(leader: () => NodeId): ReplicatedGroup {
  return {
    id: 'p0',
    propose: () => Promise.reject(new Error('no replica here')),
    read: () => Promise.reject(new Error('no replica here')),
    status: () => ({ group: 'p0', role: 'follower', term: 0, leader: leader(), commit: 0, applied: 0 }),
  };
}

const set = (k: string, v: string, ttlMs?: number): KvClientRequest => ({
  kind: 'write',
  write: {
    op: 'set',
    key: b(k),
    value: b(v),
    condition: 'always',
    expiry: ttlMs === undefined ? { kind: 'none' } : { kind: 'in', ms: ttlMs },
    returnOld: false,
  },
});
const get = (k: string): KvClientRequest => ({ kind: 'read', op: 'get', keys: [b(k)] });

describe('KvService', () => {
  it('serves writes and linearizable reads through any node, followers forwarding to the leader', async () => {
    startCluster();
    const l = await leader();
    const followers = IDS.filter((id) => id !== l);
    expect(await nodes.get(followers[0]!)!.service.execute(set('x', '1'))).toEqual({ type: 'ok' });
    // The read through the other follower sees the write (it is linearizable, not a local stale read).
    expect(await nodes.get(followers[1]!)!.service.execute(get('x'))).toEqual({ type: 'bulk', value: b('1') });
    expect(await nodes.get(l)!.service.execute(get('missing'))).toEqual({ type: 'nil' });
    const del: KvClientRequest = { kind: 'write', write: { op: 'del', keys: [b('x'), b('y')] } };
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
    const t = Date.now();
    const res = await nodes.get(l)!.service.execute(set('z', '1'));
    expect(res.type).toBe('failure');
    // Within about an election timeout (10 ticks of 10 ms here), not the request timeout, naming whom it misses.
    expect(res.type === 'failure' && res.code).toBe('CLUSTERDOWN');
    for (const id of IDS.filter((id) => id !== l)) expect(res.type === 'failure' && res.message).toContain(id);
    expect(Date.now() - t).toBeLessThan(1000);
    // A read, which may be retried, answers at once too: the quorum stays lost.
    const t2 = Date.now();
    const read = await nodes.get(l)!.service.execute(get('z'));
    expect(read.type === 'failure' && read.code).toBe('CLUSTERDOWN');
    expect(Date.now() - t2).toBeLessThan(200);
  });

  it("evaluates expiry at the leader's clock, whichever node serves the client", async () => {
    startCluster();
    const l = await leader();
    const follower = IDS.find((id) => id !== l)!;
    // The follower's clock runs an hour behind: by its own reading the key would live an hour longer.
    offsets.set(follower, -3_600_000);
    expect(await nodes.get(l)!.service.execute(set('t', '1', 60_000))).toEqual({ type: 'ok' });
    const pttl = await nodes.get(follower)!.service.execute({ kind: 'read', op: 'pttl', keys: [b('t')] });
    expect(pttl.type === 'int' && pttl.value > 0n && pttl.value <= 60_000n).toBe(true);
    // A time to live sent through the follower counts from the leader's time too.
    expect(await nodes.get(follower)!.service.execute(set('u', '1', 60_000))).toEqual({ type: 'ok' });
    const ttlU = await nodes.get(l)!.service.execute({ kind: 'read', op: 'pttl', keys: [b('u')] });
    expect(ttlU.type === 'int' && ttlU.value > 55_000n && ttlU.value <= 60_000n).toBe(true);
    // The leader's clock moves past the deadline: the key is gone for every client.
    offsets.set(l, 61_000);
    expect(await nodes.get(follower)!.service.execute(get('t'))).toEqual({ type: 'nil' });
    expect(await nodes.get(l)!.service.execute(get('t'))).toEqual({ type: 'nil' });
  });

  it("answers Redis' error for an expiry out of range, proposing nothing", async () => {
    startCluster();
    const l = await leader();
    const applied = nodes.get(l)!.host.status('p0').applied;
    expect(await nodes.get(l)!.service.execute(set('big', '1', Number.MAX_SAFE_INTEGER))).toEqual({
      type: 'error',
      message: "ERR invalid expire time in 'set' command",
    });
    expect(nodes.get(l)!.host.status('p0').applied).toBe(applied);
  });

  it('applies a write retried in its session once, through any node, answering the first reply', async () => {
    startCluster();
    const l = await leader();
    const follower = IDS.find((id) => id !== l)!;
    const incr: KvClientRequest = {
      kind: 'write',
      write: { op: 'incr', key: b('n'), delta: 5n },
      session: { clientId: 'c1', seq: 1, lowWater: 0 },
    };
    expect(await nodes.get(follower)!.service.execute(incr)).toEqual({ type: 'int', value: 5n });
    expect(await nodes.get(l)!.service.execute(incr)).toEqual({ type: 'int', value: 5n });
    const next: KvClientRequest = { ...incr, session: { clientId: 'c1', seq: 2, lowWater: 1 } };
    expect(await nodes.get(follower)!.service.execute(next)).toEqual({ type: 'int', value: 10n });
    expect(await nodes.get(l)!.service.execute(get('n'))).toEqual({ type: 'bulk', value: b('10') });
  });
});

/** Every request of `reqs` in client session `clientId`, writes numbered from 1. */
function inSession(clientId: string, reqs: KvClientRequest[]): KvClientRequest[] {
  let seq = 0;
  return reqs.map((r) => (r.kind === 'write' ? { ...r, session: { clientId, seq: ++seq, lowWater: 0 } } : r));
}

const incr = (k: string): KvClientRequest => ({ kind: 'write', write: { op: 'incr', key: b(k), delta: 1n } });

describe('KvService answers without records', () => {
  const put = (k: string, v: string, ifVersion?: number): Extract<KvClientRequest, { kind: 'write' }> => ({
    kind: 'write',
    write: {
      op: 'cond',
      key: b(k),
      compare: ifVersion === undefined ? { kind: 'always' } : { kind: 'version', op: '=', value: ifVersion },
      action: { kind: 'put', value: b(v), expiry: { kind: 'none' } },
    },
  });
  const minimal = (r: Extract<KvClientRequest, { kind: 'write' }>): KvClientRequest => ({ ...r, answer: 'revision' });

  it('answers a write asking for its revision only without its record, through a follower and on the leader', async () => {
    startCluster();
    const l = await leader();
    const f = IDS.find((id) => id !== l)!;
    const full = await nodes.get(f)!.service.execute(put('k', 'v1'));
    expect(full).toMatchObject({ type: 'cond', succeeded: true, record: { version: 1 } });
    for (const [id, value] of [
      [f, 'v2'],
      [l, 'v3'],
    ] as const) {
      const res = await nodes.get(id)!.service.execute(minimal(put('k', value)));
      expect(res).toEqual({ type: 'cond', succeeded: true, revision: (res as { revision: number }).revision });
    }
    // A failed condition answers the record it failed on, whatever was asked.
    const failed = await nodes.get(f)!.service.execute(minimal(put('k', 'v4', 1)));
    expect(failed).toMatchObject({ type: 'cond', succeeded: false, record: { value: b('v3'), version: 3 } });
    // An EXEC's conditional writes alike, forwarded.
    const exec: KvClientRequest = {
      kind: 'write',
      write: { op: 'exec', writes: [put('a', '1').write, put('k', 'v5', 9).write], watch: [] },
      answer: 'revision',
    };
    const items = await nodes.get(f)!.service.execute(exec);
    expect(items).toMatchObject({ type: 'list', items: [{ type: 'cond', succeeded: true }, { succeeded: false }] });
    const [done, refused] = (items as { items: KvResponse[] }).items;
    expect(done).not.toHaveProperty('record');
    expect(refused).toMatchObject({ record: { value: b('v3') } });
  });
});

describe('KvService pipelines', () => {
  it('answers in order, each read seeing the writes before it and none after, through leader and follower', async () => {
    startCluster();
    const l = await leader();
    const follower = IDS.find((id) => id !== l)!;
    for (const [id, c] of [
      [l, 'L'],
      [follower, 'F'],
    ] as const) {
      const res = await nodes
        .get(id)!
        .service.executeAll(
          inSession(c, [
            get(`${c}a`),
            set(`${c}a`, '1'),
            incr(`${c}n`),
            get(`${c}a`),
            set(`${c}a`, '2'),
            set(`${c}a`, 'x'.repeat(3)),
            get(`${c}a`),
            incr(`${c}a`),
            incr(`${c}n`),
            get(`${c}n`),
          ]),
        );
      expect(res).toEqual([
        { type: 'nil' },
        { type: 'ok' },
        { type: 'int', value: 1n },
        { type: 'bulk', value: b('1') },
        { type: 'ok' },
        { type: 'ok' },
        { type: 'bulk', value: b('xxx') },
        // An error in one command leaves the others as they are.
        { type: 'error', message: 'ERR value is not an integer or out of range' },
        { type: 'int', value: 2n },
        { type: 'bulk', value: b('2') },
      ]);
    }
  });

  it('proposes a run of writes in one round, forwarded from a follower in one frame', async () => {
    startCluster();
    const l = await leader();
    const follower = IDS.find((id) => id !== l)!;
    // Let the election's rounds settle.
    await nodes.get(l)!.service.execute(set('warm', '1'));
    for (const via of [l, follower]) {
      const before = nodes.get(l)!.host.stats();
      const writes = Array.from({ length: 100 }, (_, i) => set(`${via}-${i}`, `${i}`));
      const res = await nodes.get(via)!.service.executeAll(inSession(`pipe-${via}`, [...writes, get(`${via}-99`)]));
      expect(res.slice(0, 100).every((r) => r.type === 'ok')).toBe(true);
      expect(res[100]).toEqual({ type: 'bulk', value: b('99') });
      const after = nodes.get(l)!.host.stats();
      expect(after.entriesPersisted - before.entriesPersisted).toBe(100);
      // One write of all 100 entries (and of commit indexes on ticks): not one per entry.
      expect(after.storeWrites - before.storeWrites).toBeLessThanOrEqual(10);
    }
  });
});

describe('KvService pipelines across a leader change', () => {
  it('answers every request in order, retrying from the first that failed', async () => {
    // The cut-off leader's proposals time out soon; the pipeline has time to find the next leader.
    startCluster({ hostMs: 300, serviceMs: 5000 });
    const old = await leader();
    const via = IDS.find((id) => id !== old)!;
    const applied = nodes.get(old)!.host.status('p0').applied;
    // Runs of SETs of one key, each run followed by a GET: a reordered retry would show in the GETs.
    const reqs = inSession(
      'moving',
      Array.from({ length: 160 }, (_, i) => (i % 8 === 7 ? get('k') : set('k', `v${i}`))),
    );
    const pending = nodes.get(via)!.service.executeAll(reqs);
    // The leader is cut off once part of the pipeline applied, with the next run in flight.
    while (nodes.get(old)!.host.status('p0').applied < applied + 20) await new Promise((r) => setImmediate(r));
    hub.down.add(old);
    const res = await pending;
    const now = await leader(IDS.filter((id) => id !== old));
    res.forEach((r, i) => {
      expect(r).toEqual(i % 8 === 7 ? { type: 'bulk', value: b(`v${i - 1}`) } : { type: 'ok' });
    });
    expect(await nodes.get(now)!.service.execute(get('k'))).toEqual({ type: 'bulk', value: b('v158') });
  });
});

describe('KvService pipelines over a group that refuses a proposal', () => {
  it('proposes nothing after a refused write and retries from it, in order', async () => {
    const proposed: string[] = [];
    let refuse = true;
    const machine = new KvStateMachine();
    let index = 0;
    const group: ReplicatedGroup = {
      id: 'p0',
      status: () => ({ group: 'p0', role: 'leader', term: 1, leader: 'a', commit: index, applied: index }),
      read: async () => {},
      propose: <R>(data: Uint8Array): Promise<R> => {
        const cmd = decodeCommand(data);
        const key = cmd.op === 'set' ? new TextDecoder().decode(cmd.key) : cmd.op;
        if (key === 'k2' && refuse) {
          refuse = false;
          return Promise.reject(new ProposalDroppedError('log full'));
        }
        proposed.push(key);
        return new Promise<R>((resolve) => setImmediate(() => resolve(machine.apply(++index, data) as R)));
      },
    };
    const service = new KvService({ group, machine, transport: new MemoryHub().transport('a'), clock: systemClock });
    const res = await service.executeAll(inSession('c', [set('k1', '1'), set('k2', '2'), set('k3', '3'), get('k3')]));
    expect(res).toEqual([{ type: 'ok' }, { type: 'ok' }, { type: 'ok' }, { type: 'bulk', value: b('3') }]);
    expect(proposed).toEqual(['k1', 'k2', 'k3']);
  });
});

describe('KvService pipelines through a follower whose leader runs an older build', () => {
  it('forwards the requests one at a time, in order, when the leader cannot decode a pipeline', async () => {
    const hub = new MemoryHub();
    const served: string[] = [];
    // The leader of an older build: it decodes one request per frame, and answers CODEC to a pipeline.
    const old = hub.transport('old');
    const rows = new Map<string, Uint8Array>();
    old.handleRequest(Protocols.kv, async (_from, frame) => {
      let res: KvResponse;
      try {
        const req = decodeRequest(decodeForwardRequest(frame).op);
        const key = new TextDecoder().decode(
          req.kind === 'write' && req.command.op === 'set'
            ? req.command.key
            : req.kind === 'read'
              ? req.keys[0]!
              : new Uint8Array(),
        );
        served.push(`${req.kind} ${key}`);
        if (req.kind === 'write' && req.command.op === 'set') {
          rows.set(key, req.command.value);
          res = { type: 'ok' };
        } else {
          const v = rows.get(key);
          res = v ? { type: 'bulk', value: v } : { type: 'nil' };
        }
      } catch (err) {
        res = { type: 'failure', code: 'CODEC', message: (err as Error).message };
      }
      return encodeForwardResponse({ ok: true, result: encodeResponse(res) });
    });
    const group: ReplicatedGroup = {
      id: 'p0',
      status: () => ({ group: 'p0', role: 'follower', term: 1, leader: 'old', commit: 0, applied: 0 }),
      read: () => Promise.reject(new Error('not the leader')),
      propose: () => Promise.reject(new Error('not the leader')),
    };
    const service = new KvService({
      group,
      machine: new KvStateMachine(),
      transport: hub.transport('new'),
      clock: systemClock,
    });
    const res = await service.executeAll(inSession('c', [set('a', '1'), get('a'), set('a', '2'), get('a')]));
    expect(res).toEqual([
      { type: 'ok' },
      { type: 'bulk', value: b('1') },
      { type: 'ok' },
      { type: 'bulk', value: b('2') },
    ]);
    expect(served).toEqual(['write a', 'read a', 'write a', 'read a']);
  });
});

describe('KvService forwarding hops', () => {
  it('serves a node holding no replica through a follower, which forwards on to its leader', async () => {
    startCluster();
    const l = await leader();
    const follower = IDS.find((id) => id !== l)!;
    // Node d replicates nothing: its service sends every request to the follower, which is one hop from the leader.
    const transport = hub.transport('d');
    const remote = noReplica(() => follower);
    const d = new KvService({ group: remote, transport, clock: systemClock, requestTimeoutMs: 1500 });
    expect(await d.execute(set('hop', 'v'))).toEqual({ type: 'ok' });
    expect(await d.execute(get('hop'))).toEqual({ type: 'bulk', value: b('v') });
    expect(await nodes.get(l)!.service.execute(get('hop'))).toEqual({ type: 'bulk', value: b('v') });
  });

  it('refuses a request forwarded too many times instead of forwarding it again', async () => {
    startCluster();
    const l = await leader();
    const follower = IDS.find((id) => id !== l)!;
    const op = encodeRequest({ kind: 'read', op: 'get', keys: [b('x')], now: 0 });
    const ask = async (hops: number): Promise<KvResponse> => {
      const frame = encodeForwardRequest({ group: 'p0', op, hops });
      const answer = decodeForwardResponse(await hub.transport('d').request(follower, Protocols.kv, frame));
      if (!answer.ok) throw new Error(answer.message);
      return decodeResponse(answer.result);
    };
    expect(await ask(MAX_FORWARD_HOPS - 2)).toEqual({ type: 'nil' });
    const refused = await ask(MAX_FORWARD_HOPS - 1);
    expect(refused).toMatchObject({ type: 'failure', code: 'NOT_LEADER', leaderId: l });
    expect(refused.type === 'failure' && refused.message).toMatch(
      /forwarded 3 times without reaching the leader of p0 \(at most 3 hops\)/,
    );
  });
});

describe('KvService forwarded deadlines', () => {
  /** A transport's `request`, as the service calls it (the in-memory transport ignores the signal). */
  type Request = (
    peer: NodeId,
    protocol: ProtocolId,
    frame: Uint8Array,
    opts?: { signal?: AbortSignal },
  ) => Promise<Uint8Array>;
  const wrap = (id: NodeId, by: (request: Request) => Request): void => {
    const t = hub.nodes.get(id)! as unknown as { request: Request };
    t.request = by(t.request.bind(t));
  };
  /** Makes `id`'s requests give up when their signal says so. */
  const honourSignals = (id: NodeId): void =>
    wrap(
      id,
      (request) => (peer, protocol, frame, opts) =>
        new Promise<Uint8Array>((resolve, reject) => {
          opts?.signal?.addEventListener('abort', () => reject(new Error('timed out')), { once: true });
          request(peer, protocol, frame).then(resolve, reject);
        }),
    );

  it('serves a forwarded request within what its sender waits, so the node that did not answer is the one named', async () => {
    startCluster({ serviceMs: 5000 });
    const l = await leader();
    const follower = IDS.find((id) => id !== l)!;
    // The leader takes forwarded requests and never answers them.
    hub.nodes.get(l)!.requestHandlers.set(Protocols.kv, () => new Promise(() => {}));
    honourSignals(follower);
    const transport = hub.transport('d');
    honourSignals('d');
    const remote = noReplica(() => follower);
    const d = new KvService({ group: remote, transport, clock: systemClock, requestTimeoutMs: 800 });
    const started = Date.now();
    const res = await d.execute(get('x'));
    // The follower gave up on the leader before d gave up on the follower (with its own 5 s it would not
    // have, and d would have blamed the follower, counting a failure against it).
    expect(res).toMatchObject({ type: 'failure', code: 'UNAVAILABLE' });
    expect(res.type === 'failure' && res.message).toBe(`leader ${l} unreachable: timed out`);
    expect(Date.now() - started).toBeLessThan(2000);
    // The frame says how long its sender waits (the first attempt: the whole request timeout).
    let seen: number | undefined;
    wrap('d', (request) => (peer, protocol, frame, opts) => {
      seen ??= decodeForwardRequest(frame).timeoutMs;
      return request(peer, protocol, frame, opts);
    });
    await d.execute(get('x'));
    expect(seen).toBeGreaterThan(700);
    expect(seen).toBeLessThanOrEqual(800);
  });

  it('answers the failure it was relayed rather than try again with too little time for an answer', async () => {
    const hub = new MemoryHub();
    let asked = 0;
    // A follower that relays its leader's timeout once 30 ms of d's 300 are left: a retry would have
    // 10 ms after its pause, and time out here blaming the follower.
    hub.transport('f').handleRequest(Protocols.kv, async () => {
      asked++;
      await new Promise((r) => setTimeout(r, 270));
      return encodeForwardResponse({ ok: true, result: encodeResponse(unreachable) });
    });
    const unreachable: KvResponse = {
      type: 'failure',
      code: 'UNAVAILABLE',
      message: 'leader b unreachable: timed out',
    };
    const d = new KvService({
      group: noReplica(() => 'f'),
      transport: hub.transport('d'),
      clock: systemClock,
      requestTimeoutMs: 300,
    });
    expect(await d.execute(get('x'))).toEqual(unreachable);
    expect(asked).toBe(1);
  });
});

describe('KvService epoch fencing', () => {
  it('refuses a forward routed by an older partition map unserved; the sender refreshes its map and retries', async () => {
    startCluster();
    const l = await leader();
    for (const id of IDS) epochs.set(id, 5);
    const transport = hub.transport('d');
    const remote = noReplica(() => l);
    let epoch = 4;
    let refreshed = 0;
    const d = new KvService({
      group: remote,
      transport,
      clock: systemClock,
      requestTimeoutMs: 1500,
      epoch: () => epoch,
      refreshEpoch: async () => {
        refreshed++;
        epoch = 5;
      },
    });
    expect(await d.execute(set('fenced', 'v'))).toEqual({ type: 'ok' });
    expect(refreshed).toBe(1);
    // Raw: a forward of epoch 4 is refused and not applied; one of epoch 5 (or without an epoch) is served.
    const ask = async (e: number | undefined, value: string): Promise<KvResponse> => {
      const op = encodeRequest({ kind: 'write', command: setCmd('raw', value, Date.now()) });
      const frame = encodeForwardRequest({ group: 'p0', op, ...(e !== undefined ? { epoch: e } : {}) });
      const answer = decodeForwardResponse(await transport.request(l, Protocols.kv, frame));
      if (!answer.ok) throw new Error(answer.message);
      return decodeResponse(answer.result);
    };
    const stale = await ask(4, 'old');
    expect(stale).toMatchObject({ type: 'failure', code: 'STALE_EPOCH' });
    expect(stale.type === 'failure' && stale.message).toMatch(/epoch 4 of p0, which is at epoch 5 here/);
    expect(await nodes.get(l)!.service.execute(get('raw'))).toEqual({ type: 'nil' });
    expect(await ask(5, 'new')).toEqual({ type: 'ok' });
    expect(await ask(undefined, 'unfenced')).toEqual({ type: 'ok' });
    expect(await nodes.get(l)!.service.execute(get('raw'))).toEqual({ type: 'bulk', value: b('unfenced') });
  });
});

describe('KvService circuit breaker', () => {
  /** Node d, holding no replica, forwards everything to `to`; `sent` counts its forwards that reached the transport. */
  function forwarder(to: NodeId, options: Partial<KvServiceOptions> = {}): { d: KvService; sent: () => number } {
    const transport = hub.transport('d');
    let sent = 0;
    const request = transport.request.bind(transport);
    transport.request = (peer, protocol, frame) => {
      sent++;
      return request(peer, protocol, frame);
    };
    const remote = noReplica(() => to);
    const d = new KvService({ group: remote, transport, clock: systemClock, requestTimeoutMs: 1500, ...options });
    return { d, sent: () => sent };
  }

  it('opens on failing forwards to an unreachable leader, fails fast, probes after the cooldown and closes once it answers', async () => {
    startCluster();
    const l = await leader();
    const cooldownMs = 300;
    // No waiting for another leader once the circuit is open: every refusal is answered at once.
    const { d, sent } = forwarder(l, {
      circuitBreaker: { minFailures: 3, failureRate: 0.5, cooldownMs },
      openCircuitWaitMs: 0,
    });
    expect(await d.execute(set('cb', 'v'))).toEqual({ type: 'ok' });

    hub.down.add(l);
    // A read is retried while its forwards fail, until the third failure opens the circuit.
    const first = await d.execute(get('cb'));
    expect(first).toMatchObject({ type: 'failure', code: 'CIRCUIT_OPEN' });
    expect(first.type === 'failure' && first.message).toMatch(
      new RegExp(
        `^forwarding to ${l} is suspended \\(circuit open\\): 3 of its last 4 forwards failed \\(unreachable or timed out\\); it is probed again in \\d+ ms: try again then$`,
      ),
    );
    expect(d.breakers.stats(systemClock.now())).toEqual([{ peer: l, state: 'open', opens: 1, rejections: 1 }]);
    // Open: answered at once, nothing sent.
    const before = sent();
    expect(await d.execute(set('cb', 'w'))).toMatchObject({ type: 'failure', code: 'CIRCUIT_OPEN' });
    expect(sent()).toBe(before);

    /** Reads through d until the answer is no longer CIRCUIT_OPEN (within 5 s), polling every 20 ms. */
    const pastOpen = async (): Promise<KvResponse> => {
      const deadline = Date.now() + 5000;
      for (;;) {
        const res = await d.execute(get('cb'));
        if (res.type !== 'failure' || res.code !== 'CIRCUIT_OPEN') return res;
        if (Date.now() > deadline) throw new Error(`still ${res.message}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    // After the cooldown, a probe to the peer still down fails: open again for another cooldown.
    const probed = await waitFor(async () => {
      const res = await d.execute(get('cb'));
      return res.type === 'failure' && /the probe after the cooldown failed too/.test(res.message) ? res : undefined;
    });
    expect(probed).toMatchObject({ code: 'CIRCUIT_OPEN' });
    expect(d.breakers.of(l).opens).toBe(2);

    // The peer is back: the next probe is answered, the circuit closes and forwarding resumes.
    hub.down.delete(l);
    expect(await pastOpen()).toEqual({ type: 'bulk', value: b('v') });
    expect(d.breakers.of(l).state(systemClock.now())).toBe('closed');
    expect(await d.execute(set('cb', 'after'))).toEqual({ type: 'ok' });
    expect(await d.execute(get('cb'))).toEqual({ type: 'bulk', value: b('after') });
    expect(d.breakers.of(l).opens).toBe(2);
  });

  it('keeps a request refused by a circuit opened lately waiting for another leader, and sends it there', async () => {
    startCluster();
    const l = await leader();
    const transport = hub.transport('d');
    let to = l;
    const remote = noReplica(() => to);
    const d = new KvService({
      group: remote,
      transport,
      clock: systemClock,
      requestTimeoutMs: 1500,
      circuitBreaker: { minFailures: 3, cooldownMs: 60_000 },
      openCircuitWaitMs: 60_000,
    });
    hub.down.add(l);
    // Writes outside a session are not retried after a failed forward: each fails once, the third opens the circuit.
    for (let i = 0; i < 3; i++) expect(await d.execute(set('moved', 'v'))).toMatchObject({ code: 'UNAVAILABLE' });
    expect(d.breakers.of(l).state(systemClock.now())).toBe('open');
    hub.down.delete(l);
    // This node learns of another leader only after its circuit to the old one refused the write twice more.
    const breaker = d.breakers.of(l);
    const admit = breaker.admit.bind(breaker);
    breaker.admit = (now) => {
      const a = admit(now);
      if (!a.ok && breaker.rejections === 3) to = IDS.find((id) => id !== l)!;
      return a;
    };
    expect(await d.execute(set('moved', 'v'))).toEqual({ type: 'ok' });
    expect(to).not.toBe(l);
    expect(breaker.rejections).toBe(3);
    expect(await nodes.get(to)!.service.execute(get('moved'))).toEqual({ type: 'bulk', value: b('v') });
  });

  it('counts a STALE_EPOCH answer as the peer answering, not as a failure', async () => {
    startCluster();
    const l = await leader();
    for (const id of IDS) epochs.set(id, 5);
    // The most sensitive breaker: one failure would open it.
    const { d, sent } = forwarder(l, {
      requestTimeoutMs: 300,
      epoch: () => 4,
      refreshEpoch: async () => {},
      circuitBreaker: { minFailures: 1, failureRate: 0 },
    });
    const res = await d.execute(set('stale', 'v'));
    expect(res).toMatchObject({ type: 'failure', code: 'STALE_EPOCH' });
    expect(sent()).toBeGreaterThan(1);
    expect(d.breakers.stats(systemClock.now())).toEqual([{ peer: l, state: 'closed', opens: 0, rejections: 0 }]);
  });
});

/** Polls `probe` every 20 ms until it returns a value (within 5 s). */
async function waitFor<T>(probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}
