import type { KvClientRequest, KvResponse } from '@cohort/kv';
import { describe, expect, it } from 'vitest';
import type { KvApi, NodeStatus } from '../src/kv-api.js';
import { newServerState } from '../src/resp/clients.js';
import type { Session } from '../src/resp/commands.js';
import { Pipeline, type PipelineLimits } from '../src/resp/pipeline.js';
import { newSession } from '../src/resp/plan.js';
import type { Reply } from '../src/resp/reply.js';

const cmd = (line: string): Buffer[] => line.split(' ').map((w) => Buffer.from(w));

/** A KvApi whose pipelines wait until the test answers them. */
class HeldKv implements KvApi {
  readonly batches: { reqs: KvClientRequest[]; answer: (res: KvResponse[]) => void; fail: (err: Error) => void }[] = [];

  execute(): Promise<KvResponse> {
    throw new Error('the pipeline sends batches only');
  }

  executeAll(reqs: KvClientRequest[]): Promise<KvResponse[]> {
    return new Promise((answer, fail) => this.batches.push({ reqs, answer, fail }));
  }

  status(): NodeStatus {
    return { id: 'n1', role: 'leader', term: 1, leader: 'n1', commit: 0, applied: 0 };
  }

  /** Answers batch `i`: OK for writes, the key's name as a bulk for reads. */
  answerAll(i: number): void {
    const b = this.batches[i]!;
    b.answer(
      b.reqs.map((r): KvResponse => (r.kind === 'write' ? { type: 'ok' } : { type: 'bulk', value: r.keys[0]! })),
    );
  }
}

function setup(limits: Partial<PipelineLimits> = {}) {
  const api = new HeldKv();
  const session: Session = newSession(newServerState(), 'c');
  const replies: Reply[][] = [];
  const pauses: boolean[] = [];
  let closed = false;
  let writable = true;
  const pipeline = new Pipeline({
    api,
    session,
    limits,
    reply: (r) => replies.push(r),
    pause: (p) => pauses.push(p),
    writable: () => writable,
    close: () => {
      closed = true;
    },
  });
  return {
    api,
    session,
    replies,
    pauses,
    pipeline,
    closed: () => closed,
    setWritable: (w: boolean) => {
      writable = w;
    },
  };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
const sessions = (reqs: KvClientRequest[]) =>
  reqs.flatMap((r) => (r.kind === 'write' && r.session ? [[r.session.seq, r.session.lowWater]] : []));

describe('RESP pipeline', () => {
  it('sends the commands that arrived together as one batch and answers them in order, local replies included', async () => {
    const t = setup();
    for (const line of ['SET a 1', 'PING', 'GET a', 'INCR n', 'ECHO hi', 'GET b']) t.pipeline.push(cmd(line));
    await flush();
    expect(t.api.batches).toHaveLength(1);
    expect(t.api.batches[0]!.reqs.map((r) => r.kind)).toEqual(['write', 'read', 'write', 'read']);
    expect(t.replies).toEqual([]);
    t.api.answerAll(0);
    await flush();
    expect(t.replies).toEqual([
      [
        { t: 'simple', s: 'OK' },
        { t: 'simple', s: 'PONG' },
        { t: 'bulk', v: Buffer.from('a') },
        { t: 'simple', s: 'OK' },
        { t: 'bulk', v: Buffer.from('hi') },
        { t: 'bulk', v: Buffer.from('b') },
      ],
    ]);
  });

  it('keeps one batch in flight; the next holds what arrived meanwhile, the low-water mark past the first', async () => {
    const t = setup();
    t.pipeline.push(cmd('SET a 1'));
    t.pipeline.push(cmd('SET b 1'));
    t.pipeline.push(cmd('SET c 1'));
    t.pipeline.push(cmd('GET c'));
    t.pipeline.push(cmd('DEL a'));
    await flush();
    expect(t.api.batches).toHaveLength(1);
    // Several writes in flight, none acknowledged yet.
    expect(sessions(t.api.batches[0]!.reqs)).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0],
    ]);
    t.api.answerAll(0);
    await flush();
    t.pipeline.push(cmd('SET d 1'));
    t.pipeline.push(cmd('SET e 1'));
    await flush();
    expect(t.api.batches).toHaveLength(2);
    expect(sessions(t.api.batches[1]!.reqs)).toEqual([
      [5, 4],
      [6, 4],
    ]);
    t.pipeline.push(cmd('GET e'));
    await flush();
    expect(t.api.batches).toHaveLength(2);
    t.api.answerAll(1);
    await flush();
    expect(t.api.batches).toHaveLength(3);
    expect(t.api.batches[2]!.reqs).toEqual([{ kind: 'read', op: 'get', keys: [Buffer.from('e')] }]);
    t.api.answerAll(2);
    await t.pipeline.drained();
    expect(t.replies.map((r) => r.length)).toEqual([5, 2, 1]);
    expect(t.session.writes.lowWater).toBe(6);
  });

  it('answers every command in order when some fail, and when the whole batch throws', async () => {
    const t = setup();
    for (const line of ['SET a 1', 'INCR a', 'GET', 'GET a', 'SET b 2']) t.pipeline.push(cmd(line));
    await flush();
    t.api.batches[0]!.answer([
      { type: 'ok' },
      { type: 'error', message: 'ERR value is not an integer or out of range' },
      { type: 'failure', code: 'TIMEOUT', message: 'timed out' },
      { type: 'ok' },
    ]);
    await flush();
    expect(t.replies[0]).toEqual([
      { t: 'simple', s: 'OK' },
      { t: 'error', s: 'ERR value is not an integer or out of range' },
      { t: 'error', s: "ERR wrong number of arguments for 'get' command" },
      { t: 'error', s: 'TIMEOUT timed out' },
      { t: 'simple', s: 'OK' },
    ]);
    t.pipeline.push(cmd('PING'));
    t.pipeline.push(cmd('SET c 3'));
    await flush();
    t.api.batches[1]!.fail(Object.assign(new Error('node stopping'), { code: 'UNAVAILABLE' }));
    await flush();
    expect(t.replies[1]).toEqual([
      { t: 'simple', s: 'PONG' },
      { t: 'error', s: 'UNAVAILABLE node stopping' },
    ]);
    // The pipeline goes on after a failed batch.
    t.pipeline.push(cmd('GET z'));
    await flush();
    t.api.answerAll(2);
    await t.pipeline.drained();
    expect(t.replies[2]).toEqual([{ t: 'bulk', v: Buffer.from('z') }]);
  });

  it('stops reading while too much is outstanding and reads again below half', async () => {
    const t = setup({ maxPending: 6, maxBatch: 4 });
    for (let i = 0; i < 5; i++) t.pipeline.push(cmd(`SET k${i} v`));
    expect(t.pauses).toEqual([]);
    t.pipeline.push(cmd('SET k5 v'));
    expect(t.pauses).toEqual([true]);
    await flush();
    expect(t.api.batches.map((b) => b.reqs.length)).toEqual([4]);
    t.api.answerAll(0);
    await flush();
    // 2 outstanding (the next batch) of 6: below half, reading resumes.
    expect(t.pauses).toEqual([true, false]);
    expect(t.api.batches.map((b) => b.reqs.length)).toEqual([4, 2]);
    t.api.answerAll(1);
    await t.pipeline.drained();
    expect(t.pipeline.size).toBe(0);
  });

  it('bounds a batch by bytes, a larger command going alone', async () => {
    const t = setup({ maxBatchBytes: 64 });
    t.pipeline.push(cmd(`SET big ${'x'.repeat(100)}`));
    t.pipeline.push(cmd('SET a 1'));
    t.pipeline.push(cmd('SET b 1'));
    await flush();
    expect(t.api.batches.map((b) => b.reqs.length)).toEqual([1]);
    t.api.answerAll(0);
    await flush();
    expect(t.api.batches.map((b) => b.reqs.length)).toEqual([1, 2]);
  });

  it('runs nothing after QUIT and closes once its reply is handed over', async () => {
    const t = setup();
    for (const line of ['SET a 1', 'QUIT', 'SET b 2', 'PING']) t.pipeline.push(cmd(line));
    await flush();
    expect(t.api.batches[0]!.reqs).toHaveLength(1);
    expect(t.closed()).toBe(false);
    t.api.answerAll(0);
    await t.pipeline.drained();
    expect(t.replies).toEqual([
      [
        { t: 'simple', s: 'OK' },
        { t: 'simple', s: 'OK' },
      ],
    ]);
    expect(t.closed()).toBe(true);
    expect(t.session.writes.seq).toBe(1);
    t.pipeline.push(cmd('SET c 3'));
    await flush();
    expect(t.api.batches).toHaveLength(1);
  });

  it('starts no batch while replies cannot be written, and resumes on kick', async () => {
    const t = setup();
    t.setWritable(false);
    t.pipeline.push(cmd('GET a'));
    await flush();
    expect(t.api.batches).toHaveLength(0);
    t.setWritable(true);
    t.pipeline.kick();
    expect(t.api.batches).toHaveLength(1);
  });

  it('drops what was not started when the connection goes away', async () => {
    const t = setup({ maxBatch: 1 });
    t.pipeline.push(cmd('SET a 1'));
    t.pipeline.push(cmd('SET b 1'));
    await flush();
    t.pipeline.stop();
    t.api.answerAll(0);
    await t.pipeline.drained();
    expect(t.api.batches).toHaveLength(1);
    expect(t.replies).toEqual([]);
  });
});
