import {
  type Deadline,
  type Expiry,
  type KvClientRequest,
  type KvClientWrite,
  type KvResponse,
  RESERVED_PREFIX,
  SlotMap,
} from '@cohort/kv';
import { describe, expect, it } from 'vitest';
import type { KvApi, NodeStatus } from '../src/kv-api.js';
import { mergePipelinedWrites } from '../src/merged-writes.js';
import { newServerState } from '../src/resp/clients.js';
import { Pipeline } from '../src/resp/pipeline.js';
import { newSession } from '../src/resp/plan.js';
import type { Reply } from '../src/resp/reply.js';

const b = (s: string): Buffer => Buffer.from(s);

/** A KvApi that records what it is sent and answers each write by `answer` (OK by default), each read nil. */
class RecordingKv implements KvApi {
  readonly sent: KvClientRequest[][] = [];
  constructor(private readonly answer: (w: KvClientWrite) => KvResponse = () => ({ type: 'ok' })) {}

  execute(req: KvClientRequest): Promise<KvResponse> {
    return this.executeAll([req]).then(([r]) => r!);
  }

  async executeAll(reqs: KvClientRequest[]): Promise<KvResponse[]> {
    this.sent.push(reqs);
    return reqs.map((r): KvResponse => {
      if (r.kind === 'read') return { type: 'nil' };
      if (r.write.op !== 'exec') return this.answer(r.write);
      return { type: 'list', items: r.write.writes.map((w) => this.answer(w) as Extract<KvResponse, { type: 'ok' }>) };
    });
  }

  status(): NodeStatus {
    return { id: 'n1', role: 'leader', term: 1, leader: 'n1', commit: 0, applied: 0 };
  }
}

let seq = 0;
/** `write` in client `clientId`'s session, at its next sequence number. */
const sessioned = (write: KvClientWrite, clientId = 'c1', lowWater = 0): KvClientRequest => ({
  kind: 'write',
  write,
  session: { clientId, seq: ++seq, lowWater },
});
const setOf = (key: Uint8Array, value = 'v', expiry: Expiry = { kind: 'none' }): KvClientWrite => ({
  op: 'set',
  key,
  value: b(value),
  condition: 'always',
  expiry,
  returnOld: false,
});
const set = (key: string, value = 'v', clientId = 'c1'): KvClientRequest => sessioned(setOf(b(key), value), clientId);
const expire = (key: string, deadline: Deadline, command: string): KvClientRequest =>
  sessioned({ op: 'expire', key: b(key), deadline, flag: 'always', command });
const get = (key: string): KvClientRequest => ({ kind: 'read', op: 'get', keys: [b(key)] });
const kinds = (reqs: KvClientRequest[]): string[] =>
  reqs.map((r) => (r.kind === 'read' ? 'get' : r.write.op === 'exec' ? `exec${r.write.writes.length}` : r.write.op));

describe('merged pipelined writes', () => {
  it('sends consecutive writes of one session as one EXEC in the last one’s session, and answers each alone', async () => {
    const inner = new RecordingKv((w) => (w.op === 'incr' ? { type: 'int', value: 7n } : { type: 'ok' }));
    const merged: [number, number][] = [];
    const api = mergePipelinedWrites(inner, new SlotMap(1), { onMerged: (w, e) => merged.push([w, e]) });
    const incr = sessioned({ op: 'incr', key: b('n'), delta: 1n }, 'c1', 3);
    const reqs = [set('a'), incr, set('b'), get('a'), set('c'), get('c'), set('d'), set('e')];
    const last = reqs[2] as Extract<KvClientRequest, { kind: 'write' }>;
    const answers = await api.executeAll(reqs);
    expect(kinds(inner.sent[0]!)).toEqual(['exec3', 'get', 'set', 'get', 'exec2']);
    const exec = inner.sent[0]![0] as Extract<KvClientRequest, { kind: 'write' }>;
    expect(exec.session).toEqual(last.session);
    expect(exec.write).toEqual({
      op: 'exec',
      writes: reqs.slice(0, 3).map((r) => (r as typeof last).write),
      watch: [],
    });
    expect(answers).toEqual([
      { type: 'ok' },
      { type: 'int', value: 7n },
      { type: 'ok' },
      { type: 'nil' },
      { type: 'ok' },
      { type: 'nil' },
      { type: 'ok' },
      { type: 'ok' },
    ]);
    expect(merged).toEqual([[5, 2]]);
  });

  it('leaves alone what may not share an entry: other partitions, sessions, no session, keyless and nested writes', async () => {
    const inner = new RecordingKv();
    const slots = new SlotMap(4);
    const api = mergePipelinedWrites(inner, slots);
    // Keys of one hash tag share a slot; `x` and `y` fall in different partitions of four.
    expect(slots.partitionOfKey(b('x'))).not.toBe(slots.partitionOfKey(b('y')));
    const noSession: KvClientRequest = { kind: 'write', write: { op: 'del', keys: [b('{t}3')] } };
    const flush = sessioned({ op: 'flush' });
    const multi = sessioned({ op: 'exec', writes: [{ op: 'del', keys: [b('{t}4')] }], watch: [] });
    const spanning = sessioned({ op: 'del', keys: [b('x'), b('y')] });
    // An absolute deadline stays as stated alone; in an EXEC with a relative one it would move by the forwarding delay.
    const at = sessioned(setOf(b('{t}8'), 'v', { kind: 'at', ms: 4_000_000_000_000 }));
    const expireAt = expire('{t}9', { kind: 'at', ms: 4_000_000_000_000 }, 'expireat');
    const relative = expire('{t}9', { kind: 'in', ms: 10_000 }, 'expire');
    // A relative one too far off to become a deadline fails alone, not the writes beside it.
    const far = expire('{t}9', { kind: 'in', ms: 2 ** 53 - 1 }, 'pexpire');
    // A key of the transactions' reserved space is refused as it applies: alone, not with its neighbours.
    const reserved = sessioned(setOf(Buffer.concat([RESERVED_PREFIX, b('{t}r')])));
    await api.executeAll([set('{t}1'), at, set('{t}2'), expireAt, set('{t}3'), relative, far, set('{t}4'), reserved]);
    expect(kinds(inner.sent[0]!)).toEqual(['set', 'set', 'set', 'expire', 'exec2', 'expire', 'set', 'set']);
    inner.sent.length = 0;
    await api.executeAll([
      set('x'),
      set('y'),
      set('{t}1'),
      set('{t}2', 'v', 'c2'),
      noSession,
      set('{t}5'),
      flush,
      set('{t}6'),
      multi,
      set('{t}7'),
      spanning,
    ]);
    expect(kinds(inner.sent[0]!)).toEqual([
      'set',
      'set',
      'set',
      'set',
      'del',
      'set',
      'flush',
      'set',
      'exec1',
      'set',
      'del',
    ]);
    const elsewhere = ['x', 'y', 'z', 'w'].find((k) => slots.partitionOfKey(b(k)) !== slots.partitionOfKey(b('{t}')))!;
    await api.executeAll([set('{t}1'), set('{t}2'), set(elsewhere), set('{t}3')]);
    expect(kinds(inner.sent[1]!)).toEqual(['exec2', 'set', 'set']);
  });

  it('keeps to its limits of writes and bytes', async () => {
    const inner = new RecordingKv();
    const api = mergePipelinedWrites(inner, new SlotMap(1), { limits: { maxWrites: 2, maxBytes: 100 } });
    await api.executeAll([set('a'), set('b'), set('c'), set('d'), set('e')]);
    expect(kinds(inner.sent[0]!)).toEqual(['exec2', 'exec2', 'set']);
    // 1 + 60 bytes, then 1 + 60 more is over 100: each goes alone.
    const big = 'v'.repeat(60);
    await api.executeAll([set('a', big), set('b', big), set('c', 'v'), set('d', 'v')]);
    expect(kinds(inner.sent[1]!)).toEqual(['set', 'exec2', 'set']);
  });

  it('gives the entry’s failure to every write merged into it', async () => {
    const failure: KvResponse = { type: 'failure', code: 'TIMEOUT', message: 'timed out' };
    const api = mergePipelinedWrites(
      {
        execute: () => Promise.reject(new Error('unused')),
        executeAll: async (reqs) =>
          reqs.map((r) => (r.kind === 'write' && r.write.op === 'exec' ? failure : { type: 'ok' })),
        status: () => new RecordingKv().status(),
      },
      new SlotMap(1),
    );
    expect(await api.executeAll([set('a'), set('b'), get('a'), set('c')])).toEqual([
      failure,
      failure,
      { type: 'ok' },
      { type: 'ok' },
    ]);
  });

  it('answers a RESP pipeline command by command, in order, from one entry', async () => {
    const inner = new RecordingKv((w) => (w.op === 'incr' ? { type: 'int', value: 2n } : { type: 'ok' }));
    const session = newSession(newServerState(), 'c');
    const replies: Reply[][] = [];
    const pipeline = new Pipeline({
      api: mergePipelinedWrites(inner, new SlotMap(1)),
      session,
      reply: (r) => replies.push(r),
      pause: () => {},
      close: () => {},
    });
    for (const line of ['SET a 1', 'INCR n', 'PING', 'SET b 2']) pipeline.push(line.split(' ').map(b));
    await pipeline.drained();
    expect(kinds(inner.sent[0]!)).toEqual(['exec3']);
    const exec = inner.sent[0]![0] as Extract<KvClientRequest, { kind: 'write' }>;
    // The writes took sequence numbers 1 to 3; the entry goes in the session of the last.
    expect(exec.session).toEqual({ clientId: session.writes.clientId, seq: 3, lowWater: 0 });
    expect(replies).toEqual([
      [
        { t: 'simple', s: 'OK' },
        { t: 'int', n: 2n },
        { t: 'simple', s: 'PONG' },
        { t: 'simple', s: 'OK' },
      ],
    ]);
    expect(session.writes.lowWater).toBe(3);
  });
});
