import { SlotMap } from '@cohort/kv';
import { describe, expect, it } from 'vitest';
import { NodeClusterView, type PartitionState } from '../src/cluster-view.js';
import type { KvApi } from '../src/kv-api.js';
import { newServerState } from '../src/resp/clients.js';
import type { ClusterReplica, ClusterView } from '../src/resp/cluster-commands.js';
import { type Planned, type Session, planCommand } from '../src/resp/commands.js';
import { newSession, toReply } from '../src/resp/plan.js';
import { encodeReply } from '../src/resp/reply.js';

const cmd = (...words: string[]): Buffer[] => words.map((w) => Buffer.from(w));
const api = {} as KvApi;

// Three nodes, four partitions: p0 and p3 led by n1 (this node), p1 by n2, p2 by n3.
const LEADERS = ['n1', 'n2', 'n3', 'n1'];
const PORT: Record<string, number> = { n1: 7001, n2: 7002, n3: 7003 };

const view: ClusterView = {
  slots: new SlotMap(4),
  myId: () => 'a'.repeat(40),
  redirect: (p) => (LEADERS[p] === 'n1' ? undefined : `127.0.0.1:${PORT[LEADERS[p]!]}`),
  replicas: (p) =>
    [LEADERS[p]!, ...['n1', 'n2', 'n3'].filter((n) => n !== LEADERS[p])].map(
      (n, i): ClusterReplica => ({
        id: n.repeat(20),
        host: '127.0.0.1',
        port: PORT[n]!,
        leader: i === 0,
        alive: true,
        offset: 0,
      }),
    ),
  epoch: (p) => p + 1,
  nodes: () =>
    ['n1', 'n2', 'n3'].map((n) => ({
      id: n.repeat(20),
      host: '127.0.0.1',
      port: PORT[n]!,
      busPort: PORT[n]! + 100,
      self: n === 'n1',
      alive: true,
    })),
};

function session(): Session {
  const server = newServerState();
  server.cluster = view;
  return newSession(server, 'c');
}

/** The reply `planned` answers at once, as RESP2 text. */
function text(planned: Planned): string {
  if (!('reply' in planned)) throw new Error('the command went to the KV service');
  return encodeReply(planned.reply).toString();
}

// foo: slot 12182 (p2, led by n3); hello: 866 (p0, led here); bar: 5061 (p1, led by n2).
describe('cluster-aware connections', () => {
  it('are plain until they ask for the layout: served here, their multi-key commands across slots too', () => {
    const s = session();
    expect('request' in planCommand(cmd('GET', 'foo'), api, s)).toBe(true);
    expect('request' in planCommand(cmd('MGET', 'foo', 'bar'), api, s)).toBe(true);
    expect('request' in planCommand(cmd('MSET', 'foo', '1', 'bar', '2'), api, s)).toBe(true);
    expect('request' in planCommand(cmd('DEL', 'foo', 'bar'), api, s)).toBe(true);
    // A command no transaction splits keeps its keys in one slot.
    expect(text(planCommand(cmd('RENAME', 'foo', 'bar'), api, s))).toMatch(/^-CROSSSLOT/);
    // Inside MULTI: any keys across the transaction, MSET split over partitions, MSETNX's own keys in one.
    planCommand(cmd('MULTI'), api, s);
    expect(text(planCommand(cmd('SET', 'foo', '1'), api, s))).toBe('+QUEUED\r\n');
    expect(text(planCommand(cmd('MSET', 'hello', '1', 'bar', '2'), api, s))).toBe('+QUEUED\r\n');
    expect(text(planCommand(cmd('MSETNX', 'hello', '1', 'bar', '2'), api, s))).toMatch(
      /^-ERR MSETNX inside MULTI has keys in 2 partitions/,
    );
    expect(text(planCommand(cmd('EXEC'), api, s))).toMatch(/^-EXECABORT/);
  });

  it('keep CROSSSLOT once cluster-aware, unless they opt in with CLIENT CROSSSLOT ALLOW', () => {
    const s = session();
    expect(text(planCommand(cmd('CLIENT', 'CROSSSLOT'), api, s))).toBe('$5\r\nallow\r\n');
    planCommand(cmd('CLUSTER', 'SHARDS'), api, s);
    expect(text(planCommand(cmd('CLIENT', 'CROSSSLOT'), api, s))).toBe('$6\r\nrefuse\r\n');
    expect(text(planCommand(cmd('MSET', 'foo', '1', 'bar', '2'), api, s))).toMatch(/^-CROSSSLOT/);
    expect(text(planCommand(cmd('CLIENT', 'CROSSSLOT', 'allow'), api, s))).toBe('+OK\r\n');
    expect('request' in planCommand(cmd('MSET', 'foo', '1', 'bar', '2'), api, s)).toBe(true);
    // A transaction's first key is served here (else MOVED, as any single key); the next go anywhere.
    planCommand(cmd('MULTI'), api, s);
    expect(text(planCommand(cmd('SET', 'hello', '1'), api, s))).toBe('+QUEUED\r\n');
    expect(text(planCommand(cmd('SET', 'bar', '1'), api, s))).toBe('+QUEUED\r\n');
    expect('request' in planCommand(cmd('EXEC'), api, s)).toBe(true);
    expect(text(planCommand(cmd('CLIENT', 'CROSSSLOT', 'DEFAULT'), api, s))).toBe('+OK\r\n');
    expect(text(planCommand(cmd('DEL', 'foo', 'bar'), api, s))).toMatch(/^-CROSSSLOT/);
    expect(text(planCommand(cmd('CLIENT', 'CROSSSLOT', 'sometimes'), api, s))).toMatch(/ALLOW, REFUSE or DEFAULT/);
  });

  it('get MOVED to the leader once they asked CLUSTER SLOTS, and CROSSSLOT for reads across slots', () => {
    const s = session();
    const slots = text(planCommand(cmd('CLUSTER', 'SLOTS'), api, s));
    expect(slots.startsWith('*4\r\n*5\r\n:0\r\n:4095\r\n')).toBe(true);
    expect(text(planCommand(cmd('GET', 'foo'), api, s))).toBe('-MOVED 12182 127.0.0.1:7003\r\n');
    expect('request' in planCommand(cmd('GET', 'hello'), api, s)).toBe(true);
    expect(text(planCommand(cmd('MGET', 'foo', 'bar'), api, s))).toMatch(/^-CROSSSLOT/);
    expect(text(planCommand(cmd('MGET', '{foo}a', '{foo}b'), api, s))).toMatch(/^-MOVED 12182 /);
  });

  it('abort a transaction whose queued command belongs to another node', () => {
    const s = session();
    planCommand(cmd('CLUSTER', 'NODES'), api, s);
    expect(s.cluster).toBe(true);
    planCommand(cmd('MULTI'), api, s);
    expect(text(planCommand(cmd('SET', 'hello', '1'), api, s))).toBe('+QUEUED\r\n');
    // Keys of a transaction share a slot, whoever leads it.
    expect(text(planCommand(cmd('SET', 'bar', '1'), api, s))).toMatch(/^-CROSSSLOT/);
    expect(text(planCommand(cmd('EXEC'), api, s))).toMatch(/^-EXECABORT/);
    planCommand(cmd('MULTI'), api, s);
    expect(text(planCommand(cmd('SET', 'bar', '1'), api, s))).toBe('-MOVED 5061 127.0.0.1:7002\r\n');
    expect(text(planCommand(cmd('EXEC'), api, s))).toMatch(/^-EXECABORT/);
  });

  it('stay plain after READONLY alone (a read mode), and serve their reads here after it', () => {
    const s = session();
    planCommand(cmd('READONLY'), api, s);
    expect(s.cluster).toBe(false);
    expect('request' in planCommand(cmd('SET', 'foo', '1'), api, s)).toBe(true);
    planCommand(cmd('CLUSTER', 'SLOTS'), api, s);
    expect('request' in planCommand(cmd('GET', 'foo'), api, s)).toBe(true);
    expect(text(planCommand(cmd('SET', 'foo', '1'), api, s))).toBe('-MOVED 12182 127.0.0.1:7003\r\n');
  });

  it('see the layout as Redis Cluster shows it', () => {
    const s = session();
    expect(text(planCommand(cmd('CLUSTER', 'KEYSLOT', 'foo'), api, s))).toBe(':12182\r\n');
    expect(text(planCommand(cmd('CLUSTER', 'MYID'), api, s))).toBe(`$40\r\n${'a'.repeat(40)}\r\n`);
    const nodes = text(planCommand(cmd('CLUSTER', 'NODES'), api, s))
      .split('\r\n')[1]!
      .split('\n');
    expect(nodes[0]).toBe(`${'n1'.repeat(20)} 127.0.0.1:7001@7101 myself,master - 0 0 4 connected 0-4095 12288-16383`);
    expect(nodes[1]).toBe(`${'n2'.repeat(20)} 127.0.0.1:7002@7102 master - 0 0 2 connected 4096-8191`);
    const info = text(planCommand(cmd('CLUSTER', 'INFO'), api, s));
    expect(info).toContain('cluster_state:ok\r\n');
    expect(info).toContain('cluster_size:3\r\n');
    const shards = text(planCommand(cmd('CLUSTER', 'SHARDS'), api, s));
    expect(shards).toContain('$4\r\nrole\r\n$6\r\nmaster\r\n');
    expect(shards).toContain('$4\r\nrole\r\n$7\r\nreplica\r\n');
  });
});

describe('ASK and TRYAGAIN', () => {
  // p0 is led here; while its leadership goes to n2, cluster-aware connections are sent there once.
  const handing: ClusterView = { ...view, redirect: (p) => (p === 0 ? { ask: '127.0.0.1:7002' } : view.redirect(p)) };
  function handingSession(): Session {
    const server = newServerState();
    server.cluster = handing;
    return newSession(server, 'c');
  }

  it("answer ASK to the leadership's target on a cluster-aware connection while this node hands the partition over; plain connections are served", () => {
    const s = handingSession();
    expect('request' in planCommand(cmd('SET', 'hello', '1'), api, s)).toBe(true);
    planCommand(cmd('CLUSTER', 'SLOTS'), api, s);
    expect(text(planCommand(cmd('SET', 'hello', '1'), api, s))).toBe('-ASK 866 127.0.0.1:7002\r\n');
    expect(text(planCommand(cmd('GET', 'hello'), api, s))).toBe('-ASK 866 127.0.0.1:7002\r\n');
    // A partition another node leads is still MOVED; one not being handed over is served.
    expect(text(planCommand(cmd('GET', 'foo'), api, s))).toBe('-MOVED 12182 127.0.0.1:7003\r\n');
    expect(s.multi).toBeUndefined();
    // Inside MULTI the transaction is not aborted for a hand-over: EXEC forwards to the new leader.
    planCommand(cmd('MULTI'), api, s);
    expect(text(planCommand(cmd('SET', 'hello', '1'), api, s))).toBe('+QUEUED\r\n');
    expect('request' in planCommand(cmd('EXEC'), api, s)).toBe(true);
  });

  it('serve the one command after ASKING where it arrived, instead of MOVED or ASK', () => {
    const s = handingSession();
    planCommand(cmd('CLUSTER', 'NODES'), api, s);
    expect(text(planCommand(cmd('ASKING'), api, s))).toBe('+OK\r\n');
    expect('request' in planCommand(cmd('GET', 'foo'), api, s)).toBe(true);
    // Only the next command.
    expect(text(planCommand(cmd('GET', 'foo'), api, s))).toBe('-MOVED 12182 127.0.0.1:7003\r\n');
    planCommand(cmd('ASKING'), api, s);
    expect('request' in planCommand(cmd('SET', 'hello', '1'), api, s)).toBe(true);
    expect(text(planCommand(cmd('SET', 'hello', '1'), api, s))).toBe('-ASK 866 127.0.0.1:7002\r\n');
  });

  it('answer TRYAGAIN for a request refused because its partition was reconfigured while it was routed', () => {
    const reply = toReply({ type: 'failure', code: 'STALE_EPOCH', message: 'epoch 3 is older than 4' });
    expect(encodeReply(reply).toString()).toMatch(
      /^-TRYAGAIN the configuration of this key's partition changed while the request was routed \(epoch 3 is older than 4\); nothing was applied: retry\r\n$/,
    );
    expect(encodeReply(toReply({ type: 'failure', code: 'NOT_LEADER', message: 'x' })).toString()).toBe(
      '-NOT_LEADER x\r\n',
    );
  });
});

describe("a node's cluster view", () => {
  it('sends to the leader elsewhere (MOVED), to the voter a partition it leads is handed to (ASK), else serves here', () => {
    const state: PartitionState[] = [
      { leader: 'n1', term: 2, applied: 5, replicas: ['n1', 'n2'], transferee: 'n2' },
      { leader: 'n1', term: 2, applied: 5, replicas: ['n1', 'n2'] },
      { leader: 'n2', term: 2, applied: 5, replicas: ['n1', 'n2'], transferee: 'n1' },
    ];
    const v = new NodeClusterView({
      self: 'n1',
      slots: new SlotMap(3),
      layout: { partitions: 3, replicationFactor: 2, replicas: [] },
      resp: () => '127.0.0.1:7001',
      peer: '127.0.0.1:8001',
      configured: new Map(),
      members: () => [
        { id: 'n2', address: '127.0.0.1:8002', state: 'alive', incarnation: 1, tags: { resp: '127.0.0.1:7002' } },
      ],
      partition: (p) => state[p]!,
    });
    expect(v.redirect(0)).toEqual({ ask: '127.0.0.1:7002' });
    expect(v.redirect(1)).toBeUndefined();
    // Another node leads p2: MOVED there, whoever it hands the leadership to.
    expect(v.redirect(2)).toBe('127.0.0.1:7002');
  });
});
