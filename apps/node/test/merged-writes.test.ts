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
import { mergeWrites } from '../src/merged-writes.js';
import { newServerState } from '../src/resp/clients.js';
import { Pipeline } from '../src/resp/pipeline.js';
import { RESP_SESSION_PREFIX, isConnectionSession, newSession } from '../src/resp/plan.js';
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
    const api = mergeWrites(inner, new SlotMap(1), { onMerged: (w, e) => merged.push([w, e]) });
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
    const api = mergeWrites(inner, slots);
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
    const api = mergeWrites(inner, new SlotMap(1), { limits: { maxWrites: 2, maxBytes: 100 } });
    await api.executeAll([set('a'), set('b'), set('c'), set('d'), set('e')]);
    expect(kinds(inner.sent[0]!)).toEqual(['exec2', 'exec2', 'set']);
    // 1 + 60 bytes, then 1 + 60 more is over 100: each goes alone.
    const big = 'v'.repeat(60);
    await api.executeAll([set('a', big), set('b', big), set('c', 'v'), set('d', 'v')]);
    expect(kinds(inner.sent[1]!)).toEqual(['set', 'exec2', 'set']);
  });

  it('gives the entry’s failure to every write merged into it', async () => {
    const failure: KvResponse = { type: 'failure', code: 'TIMEOUT', message: 'timed out' };
    const api = mergeWrites(
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
      api: mergeWrites(inner, new SlotMap(1)),
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

/** A conditional write (an HTTP put or delete) without a session; `ifVersion` makes it a compare-and-swap. */
const cond = (
  key: string | Uint8Array,
  value?: string,
  opts: { ifVersion?: number; expiry?: Expiry } = {},
): KvClientRequest => ({
  kind: 'write',
  write: {
    op: 'cond',
    key: typeof key === 'string' ? b(key) : key,
    compare: opts.ifVersion === undefined ? { kind: 'always' } : { kind: 'version', op: '=', value: opts.ifVersion },
    action:
      value === undefined ? { kind: 'del' } : { kind: 'put', value: b(value), expiry: opts.expiry ?? { kind: 'none' } },
  },
});

/** Answers a conditional write as applied at revision 9 with its key and value; anything else OK. */
const condAnswer = (w: KvClientWrite): KvResponse =>
  w.op === 'cond' && w.action.kind === 'put'
    ? {
        type: 'cond',
        succeeded: true,
        revision: 9,
        record: { key: w.key, value: w.action.value, createRevision: 9, modifyRevision: 9, version: 1 },
      }
    : w.op === 'cond'
      ? { type: 'cond', succeeded: false, revision: 9 }
      : { type: 'ok' };

/** Lets what is answered now settle (the writes' promises, and what their answers schedule). */
const settled = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A `defer` whose functions run when the test says the turn is over. */
function turns(): { defer: (fn: () => void) => void; end: () => void } {
  const due: (() => void)[] = [];
  return {
    defer: (fn) => due.push(fn),
    end: () => {
      for (const fn of due.splice(0)) fn();
    },
  };
}

describe('merged concurrent conditional writes', () => {
  it('proposes those of one turn that find others in flight as one EXEC per partition, without a session, and answers each alone', async () => {
    const inner = new RecordingKv(condAnswer);
    const slots = new SlotMap(4);
    const turn = turns();
    const counted: [number, number][] = [];
    const api = mergeWrites(inner, slots, { defer: turn.defer, onConcurrent: (w, e) => counted.push([w, e]) });
    const [here, there] = ['x', 'y'];
    expect(slots.partitionOfKey(b(here))).not.toBe(slots.partitionOfKey(b(there)));
    const reqs = [
      cond(`{${here}}0`, 'first'),
      cond(`{${here}}1`, 'a'),
      cond(`{${there}}1`, 'b'),
      cond(`{${here}}2`),
      cond(`{${here}}3`, 'c'),
    ];
    const answers = Promise.all(reqs.map((r) => api.execute(r)));
    // The first found nothing in flight and went at once; the others wait for the end of the turn, while a
    // pipelined write goes at once, as before.
    await api.executeAll([set('p')]);
    expect(inner.sent.map(kinds)).toEqual([['cond'], ['set']]);
    expect(inner.sent[0]![0]).toBe(reqs[0]);
    // The first is answered; those that waited behind it go at the end of the turn.
    await settled();
    turn.end();
    const got = await answers;
    expect(inner.sent.slice(2).map(kinds)).toEqual([['exec3'], ['cond']]);
    const exec = inner.sent[2]![0] as Extract<KvClientRequest, { kind: 'write' }>;
    expect(exec).toEqual({
      kind: 'write',
      write: { op: 'exec', writes: [reqs[1], reqs[3], reqs[4]].map((r) => (r as typeof exec).write), watch: [] },
    });
    expect(inner.sent[3]![0]).toBe(reqs[2]);
    expect(got.map((a) => (a.type === 'cond' ? [a.succeeded, a.record?.value.toString()] : a.type))).toEqual([
      [true, 'first'],
      [true, 'a'],
      [true, 'b'],
      [false, undefined],
      [true, 'c'],
    ]);
    expect(counted).toEqual([[3, 1]]);
  });

  it('asks for an EXEC without records only when every write merged into it asks so', async () => {
    const inner = new RecordingKv(condAnswer);
    const slots = new SlotMap(1);
    const turn = turns();
    const api = mergeWrites(inner, slots, { defer: turn.defer });
    const minimal = (r: KvClientRequest): KvClientRequest => ({ ...r, answer: 'revision' }) as KvClientRequest;
    const execOf = async (reqs: KvClientRequest[]) => {
      inner.sent.length = 0;
      const answers = Promise.all(reqs.map((r) => api.execute(r)));
      await settled();
      turn.end();
      await answers;
      expect(inner.sent.map(kinds)).toEqual([['cond'], [`exec${reqs.length - 1}`]]);
      return inner.sent[1]![0] as Extract<KvClientRequest, { kind: 'write' }>;
    };
    expect((await execOf([cond('a', '1'), minimal(cond('b', '2')), minimal(cond('c', '3'))])).answer).toBe('revision');
    expect(await execOf([cond('a', '1'), minimal(cond('b', '2')), cond('c', '3')])).not.toHaveProperty('answer');
  });

  it("sends a lone client's writes at once, each answered before the next comes", async () => {
    const inner = new RecordingKv(condAnswer);
    const turn = turns();
    const api = mergeWrites(inner, new SlotMap(1), { defer: turn.defer });
    for (const k of ['a', 'b', 'c']) {
      const answer = api.execute(cond(k, 'v'));
      expect(
        inner.sent.at(-1)?.map((r) => (r.kind === 'write' && r.write.op === 'cond' ? `${r.write.key}` : '?')),
      ).toEqual([k]);
      expect((await answer).type).toBe('cond');
    }
    expect(inner.sent).toHaveLength(3);
  });

  it('never puts two writes of one key in one entry, and keeps to its limits', async () => {
    const inner = new RecordingKv(condAnswer);
    const turn = turns();
    const api = mergeWrites(inner, new SlotMap(1), { defer: turn.defer, limits: { maxWrites: 3, maxBytes: 100 } });
    const keysOf = (r: KvClientRequest): string[] =>
      r.kind === 'write' && r.write.op === 'exec'
        ? r.write.writes.map((w) => (w.op === 'cond' ? w.key.toString() : '?'))
        : [r.kind === 'write' && r.write.op === 'cond' ? r.write.key.toString() : '?'];
    /** The entries `reqs` became, sent behind a write in flight (which goes at once). */
    const send = async (reqs: KvClientRequest[]): Promise<string[][]> => {
      const before = inner.sent.length;
      const answered = Promise.all([cond('opener', 'v'), ...reqs].map((r) => api.execute(r)));
      await settled();
      turn.end();
      await answered;
      return inner.sent.slice(before + 1).map((s) => keysOf(s[0]!));
    };
    // A compare-and-swap on the revision the first was answered with would pass over the second in one entry.
    expect(await send([cond('a', '1'), cond('b', '1'), cond('a', '2', { ifVersion: 1 }), cond('c', '1')])).toEqual([
      ['a', 'b'],
      ['a', 'c'],
    ]);
    expect(await send(['a', 'b', 'c', 'd', 'e'].map((k) => cond(k, 'v')))).toEqual([
      ['a', 'b', 'c'],
      ['d', 'e'],
    ]);
    // 1 + 60 bytes, then 1 + 60 more is over 100.
    const big = 'v'.repeat(60);
    expect(await send([cond('a', big), cond('b', big), cond('c')])).toEqual([['a'], ['b', 'c']]);
  });

  it('leaves alone writes with a session, an absolute or far deadline or a reserved key, and all of them without a defer', async () => {
    const inner = new RecordingKv(condAnswer);
    const turn = turns();
    const api = mergeWrites(inner, new SlotMap(1), { defer: turn.defer });
    const idempotent: KvClientRequest = {
      kind: 'write',
      write: (cond('s', 'v') as Extract<KvClientRequest, { kind: 'write' }>).write,
      session: { clientId: 'idem', seq: 1, lowWater: 0 },
    };
    const opener = cond('o', 'v');
    const alone = [
      idempotent,
      cond('at', 'v', { expiry: { kind: 'at', ms: 4_000_000_000_000 } }),
      cond('far', 'v', { expiry: { kind: 'in', ms: 2 ** 53 - 1 } }),
      cond(Buffer.concat([RESERVED_PREFIX, b('r')]), 'v'),
    ];
    // Behind a write in flight, each of those is sent at once; a relative deadline waits with the rest.
    const answered = Promise.all(
      [opener, ...alone, cond('in', 'v', { expiry: { kind: 'in', ms: 1000 } }), cond('k', 'v')].map((r) =>
        api.execute(r),
      ),
    );
    expect(inner.sent.map((s) => s[0])).toEqual([opener, ...alone]);
    await settled();
    turn.end();
    await answered;
    expect(kinds(inner.sent[5]!)).toEqual(['exec2']);
    const plain = new RecordingKv(condAnswer);
    const unmerged = mergeWrites(plain, new SlotMap(1));
    await Promise.all([cond('a', 'v'), cond('b', 'v'), cond('c', 'v')].map((r) => unmerged.execute(r)));
    expect(plain.sent.map(kinds)).toEqual([['cond'], ['cond'], ['cond']]);
  });

  it('gives the entry’s failure, or its error, to every write merged into it', async () => {
    const failure: KvResponse = { type: 'failure', code: 'TIMEOUT', message: 'timed out' };
    let fail: 'answer' | 'throw' = 'answer';
    const turn = turns();
    const api = mergeWrites(
      {
        execute: async (req) => {
          if (fail === 'throw') throw new Error('gone');
          return req.kind === 'write' && req.write.op === 'exec'
            ? failure
            : condAnswer((req as { write: KvClientWrite }).write);
        },
        executeAll: () => Promise.reject(new Error('unused')),
        status: () => new RecordingKv().status(),
      },
      new SlotMap(1),
      { defer: turn.defer },
    );
    const answered = Promise.all([cond('o', 'v'), cond('a', 'v'), cond('b', 'v')].map((r) => api.execute(r)));
    await settled();
    turn.end();
    const [first, ...merged] = await answered;
    expect(first?.type).toBe('cond');
    expect(merged).toEqual([failure, failure]);
    fail = 'throw';
    const thrown = [cond('o', 'v'), cond('a', 'v'), cond('b', 'v')].map((r) =>
      api.execute(r).catch((e: Error) => e.message),
    );
    await settled();
    turn.end();
    expect(await Promise.all(thrown)).toEqual(['gone', 'gone', 'gone']);
  });
});

/** A SET of `key` in RESP connection `conn`'s session. */
const respSet = (conn: string, key: string, value = 'v'): KvClientRequest =>
  sessioned(setOf(b(key), value), `${RESP_SESSION_PREFIX}${conn}`);

/** A KvApi whose answers the test gives: each request waits until `answer` settles it. */
class HeldKv implements KvApi {
  readonly sent: { req: KvClientRequest; settle: (r: KvResponse) => void }[] = [];
  execute(req: KvClientRequest): Promise<KvResponse> {
    return new Promise((resolve) => this.sent.push({ req, settle: resolve }));
  }
  executeAll(reqs: KvClientRequest[]): Promise<KvResponse[]> {
    return Promise.all(reqs.map((r) => this.execute(r)));
  }
  status(): NodeStatus {
    return new RecordingKv().status();
  }
  /** The kind of each request sent so far (`exec2` for an EXEC of two writes). */
  kinds(): string[] {
    return this.sent.map((s) => kinds([s.req])[0]!);
  }
  /** Answers request `i` as applied: an EXEC with one OK per write, anything else OK. */
  answer(i: number): void {
    const { req, settle } = this.sent[i]!;
    settle(
      req.kind === 'write' && req.write.op === 'exec'
        ? { type: 'list', items: req.write.writes.map(() => ({ type: 'ok' }) as const) }
        : { type: 'ok' },
    );
  }
}

describe('merged writes of several RESP connections', () => {
  it('proposes single writes of connections that find others in flight as one EXEC per partition in a session of the node’s own, each answered alone', async () => {
    const inner = new RecordingKv((w) => (w.op === 'incr' ? { type: 'int', value: 5n } : { type: 'ok' }));
    const slots = new SlotMap(4);
    const turn = turns();
    const counted: [number, number, boolean][] = [];
    const api = mergeWrites(inner, slots, {
      defer: turn.defer,
      onConcurrent: (w, e, s) => counted.push([w, e, s]),
      connectionSession: isConnectionSession,
    });
    const [here, there] = ['x', 'y'];
    const incr = sessioned({ op: 'incr', key: b(`{${here}}n`), delta: 1n }, `${RESP_SESSION_PREFIX}c`);
    // An HTTP write with an Idempotency-Key: its client may send its session again, so it goes alone.
    const idempotent = sessioned({ op: 'incr', key: b(`{${here}}i`), delta: 1n }, 'http:key-1');
    const reqs = [
      respSet('a', `{${here}}0`),
      respSet('b', `{${here}}1`, 'one'),
      incr,
      respSet('d', `{${there}}1`),
      idempotent,
      cond(`{${here}}c`, 'v'),
      cond(`{${here}}d`, 'v'),
      respSet('e', `{${here}}2`),
    ];
    // Unpipelined RESP writes come as a batch of one (executeAll); HTTP ones alone (execute).
    const answers = Promise.all(reqs.map((r, i) => (i === 4 || i >= 5 ? api.execute(r) : api.executeAll([r]))));
    // The first found nothing in flight and went at once; so did the idempotent one; the rest wait for the turn's end.
    expect(inner.sent.map((s) => s[0])).toEqual([reqs[0], idempotent]);
    await settled();
    turn.end();
    const got = (await answers).map((a) => (Array.isArray(a) ? a[0]! : a));
    const entries = inner.sent.slice(2).map((s) => s[0] as Extract<KvClientRequest, { kind: 'write' }>);
    expect(entries.map((e) => kinds([e])[0])).toEqual(['exec3', 'set', 'exec2']);
    // The connections' writes of one partition: one EXEC in the node's session, its first sequence number.
    expect(entries[0]!.write).toEqual({
      op: 'exec',
      writes: [reqs[1], incr, reqs[7]].map((r) => (r as (typeof entries)[0]).write),
      watch: [],
    });
    expect(entries[0]!.session).toMatchObject({ seq: 1, lowWater: 0 });
    expect(entries[0]!.session!.clientId).toMatch(/^merged:/);
    // One of another partition alone, in its own session; the HTTP conditional writes in an EXEC without one.
    expect(entries[1]).toBe(reqs[3]);
    expect(entries[2]!.session).toBeUndefined();
    expect(got.map((a) => a.type)).toEqual(['ok', 'ok', 'int', 'ok', 'int', 'ok', 'ok', 'ok']);
    // Counted per partition and kind, in the order their first writes came.
    expect(counted).toEqual([
      [3, 1, true],
      [2, 1, false],
    ]);
  });

  it('numbers its entries in its own session, the low-water mark below every entry still unanswered', async () => {
    const inner = new HeldKv();
    const turn = turns();
    // Several entries in flight at once (no bound on them here): each turn's writes go at its end.
    const api = mergeWrites(inner, new SlotMap(1), {
      defer: turn.defer,
      connectionSession: isConnectionSession,
      maxInFlight: 0,
    });
    const sessionOf = (i: number) => (inner.sent[i]!.req as Extract<KvClientRequest, { kind: 'write' }>).session;
    /** Two more connections' writes behind those in flight: one entry, sent at the turn's end. */
    const pair = (k: string) => {
      const answered = Promise.all([respSet('a', `${k}1`), respSet('b', `${k}2`)].map((r) => api.executeAll([r])));
      turn.end();
      return answered;
    };
    const opener = api.executeAll([respSet('o', 'o')]);
    const first = pair('p');
    const second = pair('q');
    const third = pair('r');
    expect(inner.kinds()).toEqual(['set', 'exec2', 'exec2', 'exec2']);
    expect([1, 2, 3].map((i) => sessionOf(i))).toMatchObject([
      { seq: 1, lowWater: 0 },
      { seq: 2, lowWater: 0 },
      { seq: 3, lowWater: 0 },
    ]);
    // The second is answered: the first still is not, so the mark stays below it.
    inner.answer(2);
    await second;
    const fourth = pair('s');
    expect(sessionOf(4)).toMatchObject({ seq: 4, lowWater: 0 });
    // The first and the third answered: every entry up to 3 is, the fourth is open.
    inner.answer(1);
    inner.answer(3);
    await Promise.all([first, third]);
    const fifth = pair('t');
    expect(sessionOf(5)).toMatchObject({ seq: 5, lowWater: 3 });
    for (const i of [0, 4, 5]) inner.answer(i);
    await Promise.all([opener, fourth, fifth]);
    // Nothing in flight: a connection's write goes at once, in its own session.
    const alone = respSet('z', 'z');
    const answer = api.executeAll([alone]);
    expect(inner.sent.at(-1)!.req).toBe(alone);
    inner.answer(inner.sent.length - 1);
    await answer;
  });

  it('leaves alone what a pipeline merges, and writes that cannot share an entry', async () => {
    const inner = new RecordingKv();
    const turn = turns();
    const api = mergeWrites(inner, new SlotMap(1), { defer: turn.defer, connectionSession: isConnectionSession });
    const opener = api.executeAll([respSet('o', 'o')]);
    // Behind a write in flight: a pipeline of two (merged as before), a keyless write, a reserved key, an
    // absolute deadline, a write outside any connection's session: each at once.
    const pipelined = [respSet('p', 'p1'), respSet('p', 'p2')];
    const alone = [
      sessioned({ op: 'flushall' } as unknown as KvClientWrite, `${RESP_SESSION_PREFIX}f`),
      sessioned(setOf(Buffer.concat([RESERVED_PREFIX, b('r')])), `${RESP_SESSION_PREFIX}r`),
      sessioned(setOf(b('at'), 'v', { kind: 'at', ms: 4_000_000_000_000 }), `${RESP_SESSION_PREFIX}t`),
      set('c1-key'),
    ];
    const answered = Promise.all([api.executeAll(pipelined), ...alone.map((r) => api.executeAll([r]))]);
    expect(inner.sent.slice(1).map(kinds)).toEqual([['exec2'], ['flushall'], ['set'], ['set'], ['set']]);
    turn.end();
    await Promise.all([opener, answered]);
    expect(inner.sent).toHaveLength(6);
  });
});

describe('merged concurrent writes, one entry of a partition in flight', () => {
  it('holds the writes that come while its entry is in flight, over several turns, and sends them as one entry once it is answered', async () => {
    const inner = new HeldKv();
    const slots = new SlotMap(4);
    const turn = turns();
    const counted: [number, number, boolean][] = [];
    const api = mergeWrites(inner, slots, {
      defer: turn.defer,
      connectionSession: isConnectionSession,
      onConcurrent: (w, e, s) => counted.push([w, e, s]),
    });
    const [here, there] = ['x', 'y'];
    expect(slots.partitionOfKey(b(here))).not.toBe(slots.partitionOfKey(b(there)));
    const opener = api.executeAll([respSet('o', `{${here}}o`)]);
    expect(inner.kinds()).toEqual(['set']);
    // Two turns of writes behind it, RESP connections' and HTTP's: held while the opener is unanswered...
    const held = [
      api.executeAll([respSet('a', `{${here}}a`)]),
      api.execute(cond(`{${here}}h1`, 'v')),
      api.executeAll([respSet('b', `{${here}}b`)]),
    ];
    turn.end();
    held.push(api.executeAll([respSet('c', `{${here}}c`)]), api.execute(cond(`{${here}}h2`, 'v')));
    // ...while another partition's write, with nothing of its own in flight, goes at the end of its turn.
    const elsewhere = api.executeAll([respSet('d', `{${there}}d`)]);
    turn.end();
    expect(inner.kinds()).toEqual(['set', 'set']);
    expect(inner.sent[1]!.req).toMatchObject({ write: { key: b(`{${there}}d`) } });
    // The opener answered: at the end of that turn both kinds go, each as one entry of all it held, in order.
    inner.answer(0);
    await opener;
    await settled();
    expect(inner.kinds()).toEqual(['set', 'set']);
    turn.end();
    expect(inner.kinds()).toEqual(['set', 'set', 'exec3', 'exec2']);
    const keysOf = (i: number): string[] =>
      (inner.sent[i]!.req as { write: { writes: KvClientWrite[] } }).write.writes.map((w) =>
        'key' in w ? String(w.key) : '?',
      );
    expect(keysOf(2)).toEqual([`{${here}}a`, `{${here}}b`, `{${here}}c`]);
    expect(keysOf(3)).toEqual([`{${here}}h1`, `{${here}}h2`]);
    expect(counted).toEqual([
      [3, 1, true],
      [2, 1, false],
    ]);
    // A write that comes while those two are in flight waits for both (they count as two) and goes alone.
    const later = api.executeAll([respSet('e', `{${here}}e`)]);
    turn.end();
    inner.answer(2);
    await settled();
    turn.end();
    expect(inner.sent).toHaveLength(4);
    inner.answer(3);
    await settled();
    turn.end();
    expect(inner.kinds()).toEqual(['set', 'set', 'exec3', 'exec2', 'set']);
    for (const i of [1, 4]) inner.answer(i);
    const answers = await Promise.all([...held, elsewhere, later]);
    expect(answers.map((a) => (Array.isArray(a) ? a[0]! : a).type)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
  });

  it('lets as many entries of a partition be in flight as it is told, and refuses a bound that is no whole number', async () => {
    const inner = new HeldKv();
    const turn = turns();
    const api = mergeWrites(inner, new SlotMap(1), {
      defer: turn.defer,
      connectionSession: isConnectionSession,
      maxInFlight: 2,
    });
    const opener = api.executeAll([respSet('o', 'o')]);
    // One in flight, one more allowed: the next turn's writes go at its end.
    const second = Promise.all(['a', 'b'].map((k) => api.executeAll([respSet(k, k)])));
    turn.end();
    expect(inner.kinds()).toEqual(['set', 'exec2']);
    // Two in flight: the next turn's wait until one is answered.
    const third = Promise.all(['c', 'd'].map((k) => api.executeAll([respSet(k, k)])));
    turn.end();
    expect(inner.sent).toHaveLength(2);
    inner.answer(1);
    await second;
    await settled();
    turn.end();
    expect(inner.kinds()).toEqual(['set', 'exec2', 'exec2']);
    inner.answer(0);
    inner.answer(2);
    await Promise.all([opener, third]);
    for (const bad of [-1, 1.5, Number.NaN]) {
      expect(() => mergeWrites(inner, new SlotMap(1), { defer: turn.defer, maxInFlight: bad })).toThrow(
        /maxInFlight must be a whole number/,
      );
    }
  });

  it('holds writes behind an entry in flight only up to maxHoldMs of its clock, then lets them go as without the bound', async () => {
    const inner = new HeldKv();
    const turn = turns();
    let now = 1_000;
    const timers: { at: number; fn: () => void }[] = [];
    const clock = {
      now: () => now,
      setTimeout: (fn: () => void, ms: number) => {
        timers.push({ at: now + ms, fn });
        return {};
      },
    };
    /** Moves the clock on `ms`, firing the timers then due. */
    const advance = (ms: number): void => {
      now += ms;
      for (const t of timers.filter((t) => t.at <= now)) {
        timers.splice(timers.indexOf(t), 1);
        t.fn();
      }
    };
    const api = mergeWrites(inner, new SlotMap(1), {
      defer: turn.defer,
      connectionSession: isConnectionSession,
      clock,
      maxHoldMs: 100,
    });
    const opener = api.executeAll([respSet('o', 'o')]);
    const held = Promise.all(['a', 'b'].map((k) => api.executeAll([respSet(k, k)])));
    turn.end();
    expect(inner.kinds()).toEqual(['set']);
    // Short of the bound they wait; at it, they go at the end of that turn, the opener still unanswered.
    advance(99);
    turn.end();
    expect(inner.kinds()).toEqual(['set']);
    advance(1);
    turn.end();
    expect(inner.kinds()).toEqual(['set', 'exec2']);
    // The oldest entry in flight is past the bound: the next turn's writes go at its end too.
    const next = Promise.all(['c', 'd'].map((k) => api.executeAll([respSet(k, k)])));
    turn.end();
    expect(inner.kinds()).toEqual(['set', 'exec2', 'exec2']);
    for (const i of [0, 1, 2]) inner.answer(i);
    await Promise.all([opener, held, next]);
    // Nothing in flight: the bound starts over with the next entry.
    const again = api.executeAll([respSet('o', 'o2')]);
    const behind = api.executeAll([respSet('e', 'e')]);
    advance(50);
    turn.end();
    expect(inner.sent).toHaveLength(4);
    inner.answer(3);
    await again;
    await settled();
    turn.end();
    expect(inner.kinds()).toEqual(['set', 'exec2', 'exec2', 'set', 'set']);
    inner.answer(4);
    await behind;
    expect(() => mergeWrites(inner, new SlotMap(1), { defer: turn.defer, maxHoldMs: -1 })).toThrow(
      /maxHoldMs must be a number of ms/,
    );
  });
});
