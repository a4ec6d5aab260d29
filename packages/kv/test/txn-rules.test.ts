import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type KvCommand,
  type KvOp,
  type KvResult,
  RESERVED_PREFIX,
  type TxnStepResult,
  decodeCommand,
  decodeResponse,
  encodeCommand,
  encodeResponse,
} from '../src/index.js';
import { type MachineHarness, b, memoryMachine, sqliteMachine, text } from './harness.js';

const NOW = 1_000_000;
const TIMEOUT = 5000;
const RETENTION = 60_000;

const set = (key: string, value: string): KvOp => ({
  op: 'set',
  key: b(key),
  value: b(value),
  condition: 'always',
  expiresAt: 0,
  returnOld: false,
  now: NOW,
});
const incr = (key: string): KvOp => ({ op: 'incr', key: b(key), delta: 1n, now: NOW });
const get = (key: string): KvOp => ({ op: 'read', read: 'get', keys: [b(key)], args: [], now: NOW });

function prepare(
  txn: string,
  ops: KvOp[],
  opts: { record?: boolean; failure?: KvOp[]; absent?: string[] } = {},
): KvCommand {
  return {
    op: 'txnPrepare',
    txn,
    recordPartition: 0,
    participants: opts.record ? [0, 1] : [],
    compares: (opts.absent ?? []).map((k) => ({ key: b(k), compare: { kind: 'absent' } })),
    success: ops,
    failure: opts.failure ?? [],
    timeoutMs: TIMEOUT,
    now: NOW,
  };
}

const step = (r: KvResult): TxnStepResult => {
  if (r.type !== 'txn') throw new Error(`expected a transaction step's answer, got ${JSON.stringify(r)}`);
  return r.step;
};

describe.each([
  ['MemoryNodeStore', memoryMachine],
  ['SqliteNodeStore', sqliteMachine],
])('transaction rules on %s', (_name, make) => {
  let h: MachineHarness;
  let index: number;
  beforeEach(() => {
    h = make({ txnRetentionMs: RETENTION });
    index = 0;
  });
  afterEach(() => h.cleanup());
  const apply = (cmd: KvCommand): KvResult => h.sm.apply(++index, encodeCommand(cmd));

  it('a prepare lays an intent on every key it touches, answers both branches, and changes no key yet', () => {
    apply(set('a', '1'));
    const r = step(apply(prepare('t1', [incr('a'), set('b', 'x'), get('a')], { failure: [get('c')], absent: ['b'] })));
    expect(r).toMatchObject({ outcome: 'prepared', held: true });
    if (r.outcome !== 'prepared') return;
    expect(r.success.map((x) => (x.type === 'bulk' ? text(x.value) : x))).toEqual([
      { type: 'int', value: 2n },
      { type: 'ok' },
      '2',
    ]);
    expect(r.failure).toEqual([{ type: 'nil' }]);
    expect(h.sm.intents().map((i) => [text(i.key), i.txn, i.write])).toEqual([
      ['a', 't1', true],
      ['b', 't1', true],
      ['c', 't1', false],
    ]);
    expect(text(h.sm.get(b('a'), NOW))).toBe('1');
    expect(h.sm.get(b('b'), NOW)).toBeUndefined();
  });

  it('reserved rows are hidden from client reads, scans, ranges and DBSIZE, and client commands naming them are refused', () => {
    apply(set('a', '1'));
    apply(prepare('t1', [set('z', '2')], { record: true }));
    expect(h.sm.size).toBe(1);
    expect(h.sm.read('dbsize', [], [], NOW)).toEqual({ type: 'int', value: 1n });
    const keys = h.sm.read('keys', [], [b('*')], NOW);
    expect(keys.type === 'list' && keys.items?.map((k) => (k.type === 'bulk' ? text(k.value) : k))).toEqual(['a']);
    const scan = h.sm.read('scan', [], [new Uint8Array(), new Uint8Array(), b('100')], NOW);
    expect(scan.type === 'list' && scan.items?.length).toBe(2);
    expect(h.sm.range(new Uint8Array(), undefined, 0, NOW).records.map((r) => text(r.key))).toEqual(['a']);
    const reserved = Buffer.concat([RESERVED_PREFIX, b('r')]);
    expect(
      apply({ op: 'set', key: reserved, value: b('x'), condition: 'always', expiresAt: 0, returnOld: false, now: NOW }),
    ).toEqual({
      type: 'error',
      message: expect.stringContaining('reserved for transactions'),
    });
    expect(apply({ op: 'flush', now: NOW })).toMatchObject({ type: 'locked', txn: 't1' });
  });

  it('a command meeting an intent answers locked and does nothing; a read passes an intent that only reads', () => {
    apply(set('a', '1'));
    apply(prepare('t1', [set('a', '2'), get('r')], { record: true }));
    expect(apply(set('a', '3'))).toMatchObject({ type: 'locked', txn: 't1', recordPartition: 0, write: true });
    expect(apply(set('r', '3'))).toMatchObject({ type: 'locked', txn: 't1', write: false });
    expect(text(h.sm.get(b('a'), NOW))).toBe('1');
    expect(h.sm.readLock([b('a')])).toMatchObject({ txn: 't1', deadline: NOW + TIMEOUT });
    expect(h.sm.readLock([b('r')])).toBeUndefined();
    expect(h.sm.readLock([b('a')], new Set(['t1']))).toBeUndefined();
    expect(h.sm.readLock('all')).toMatchObject({ txn: 't1' });
    expect(h.sm.readLock({ start: b('b'), end: undefined })).toBeUndefined();
  });

  it('a locked write is not kept in its session: its retry applies afresh once the intent is gone', () => {
    apply(prepare('t1', [set('a', '2')], { record: true }));
    const write: KvCommand = { ...set('a', '3'), session: { clientId: 'c', seq: 1, lowWater: 0 } };
    expect(apply(write)).toMatchObject({ type: 'locked' });
    step(apply({ op: 'txnAbort', txn: 't1', coordinator: true, now: NOW }));
    step(apply({ op: 'txnResolve', txn: 't1', branch: 'abort', now: NOW }));
    expect(apply(write)).toEqual({ type: 'ok' });
    expect(apply(write)).toEqual({ type: 'ok' });
    expect(text(h.sm.get(b('a'), NOW))).toBe('3');
  });

  it("a prepare meeting another transaction's intent answers a conflict naming it and lays nothing", () => {
    apply(prepare('t1', [set('a', '1')], { record: true }));
    expect(step(apply(prepare('t2', [set('b', '1'), set('a', '2')])))).toEqual({
      outcome: 'conflict',
      txn: 't1',
      recordPartition: 0,
    });
    expect(h.sm.intents().map((i) => i.txn)).toEqual(['t1']);
  });

  it('the record partition creates a PENDING record; an ABORTED tombstone makes its prepare answer aborted', () => {
    apply(prepare('t1', [set('a', '1')], { record: true }));
    expect(step(h.sm.read('txnRecord', [b('t1')], [], NOW))).toEqual({ outcome: 'pending', deadline: NOW + TIMEOUT });
    expect(step(apply({ op: 'txnAbort', txn: 't2', coordinator: false, now: NOW }))).toEqual({ outcome: 'aborted' });
    expect(step(apply(prepare('t2', [set('b', '1')], { record: true })))).toEqual({ outcome: 'aborted' });
    expect(h.sm.intents().map((i) => i.txn)).toEqual(['t1']);
  });

  it('commit is the commit point: PENDING -> COMMITTED(branch); after an abort it answers aborted, and an abort after it answers committed', () => {
    apply(prepare('t1', [set('a', '1')], { record: true }));
    expect(step(apply({ op: 'txnCommit', txn: 't1', branch: 'failure', now: NOW }))).toEqual({
      outcome: 'committed',
      branch: 'failure',
    });
    expect(step(apply({ op: 'txnAbort', txn: 't1', coordinator: true, now: NOW }))).toEqual({
      outcome: 'committed',
      branch: 'failure',
    });
    apply(prepare('t2', [set('b', '1')], { record: true }));
    step(apply({ op: 'txnAbort', txn: 't2', coordinator: true, now: NOW }));
    expect(step(apply({ op: 'txnCommit', txn: 't2', branch: 'success', now: NOW }))).toEqual({ outcome: 'aborted' });
  });

  it('only the coordinator aborts a pending record before its deadline (log time); anyone may after it', () => {
    apply(prepare('t1', [set('a', '1')], { record: true }));
    expect(step(apply({ op: 'txnAbort', txn: 't1', coordinator: false, now: NOW + TIMEOUT - 1 }))).toEqual({
      outcome: 'pending',
      deadline: NOW + TIMEOUT,
    });
    expect(step(apply({ op: 'txnAbort', txn: 't1', coordinator: false, now: NOW + TIMEOUT }))).toEqual({
      outcome: 'aborted',
    });
  });

  it("resolve applies the chosen branch's states as one write at its own revision, or drops them; it is idempotent", () => {
    apply(set('a', '1'));
    apply(prepare('t1', [incr('a'), set('b', 'x')], { record: true, failure: [set('c', 'f')] }));
    step(apply({ op: 'txnCommit', txn: 't1', branch: 'success', now: NOW }));
    expect(step(apply({ op: 'txnResolve', txn: 't1', branch: 'success', now: NOW }))).toEqual({ outcome: 'resolved' });
    const at = index;
    expect(h.sm.record(b('a'), NOW)).toMatchObject({ modifyRevision: at, createRevision: 1, version: 2 });
    expect(text(h.sm.get(b('a'), NOW))).toBe('2');
    expect(h.sm.record(b('b'), NOW)).toMatchObject({ modifyRevision: at, createRevision: at });
    expect(h.sm.get(b('c'), NOW)).toBeUndefined();
    expect(h.sm.intents()).toEqual([]);
    step(apply({ op: 'txnResolve', txn: 't1', branch: 'success', now: NOW }));
    expect(h.sm.record(b('a'), NOW)?.modifyRevision).toBe(at);
    expect(step(apply({ op: 'txnForget', txn: 't1', now: NOW }))).toEqual({ outcome: 'forgotten' });
    expect(step(h.sm.read('txnRecord', [b('t1')], [], NOW))).toEqual({ outcome: 'missing' });
  });

  it('an abort resolved before the prepare arrives leaves a marker: the late prepare lays nothing; markers and tombstones go after the retention', () => {
    expect(step(apply({ op: 'txnResolve', txn: 't1', branch: 'abort', now: NOW }))).toEqual({ outcome: 'resolved' });
    expect(step(apply(prepare('t1', [set('a', '1')])))).toEqual({ outcome: 'aborted' });
    expect(h.sm.intents()).toEqual([]);
    step(apply({ op: 'txnAbort', txn: 't2', coordinator: false, now: NOW }));
    expect(h.sm.expiredKeys(NOW + RETENTION - 1, 10)).toEqual([]);
    const expired = h.sm.expiredKeys(NOW + RETENTION, 10);
    expect(expired).toHaveLength(2);
    apply({ op: 'delExpired', keys: expired, now: NOW + RETENTION });
    expect(step(h.sm.read('txnRecord', [b('t2')], [], NOW))).toEqual({ outcome: 'missing' });
    expect(step(apply(prepare('t1', [set('a', '1')])))).toMatchObject({ outcome: 'prepared' });
  });

  it('forget keeps a pending record', () => {
    apply(prepare('t1', [set('a', '1')], { record: true }));
    expect(step(apply({ op: 'txnForget', txn: 't1', now: NOW }))).toEqual({
      outcome: 'pending',
      deadline: NOW + TIMEOUT,
    });
  });

  it('a snapshot carries intents and records, and the digest covers them', async () => {
    apply(set('a', '1'));
    const before = h.sm.digest();
    apply(prepare('t1', [set('a', '2')], { record: true }));
    const withIntent = h.sm.digest();
    expect(withIntent).not.toBe(before);
    const peer = h.peer();
    const reader = await h.sm.openSnapshot();
    const writer = peer.receiveSnapshot(reader.meta);
    let seq = 0;
    for (let c = await reader.next(1 << 20); c; c = await reader.next(1 << 20)) writer.write(seq++, c);
    reader.close();
    writer.commit();
    expect(peer.digest()).toBe(withIntent);
    expect(peer.intents().map((i) => i.txn)).toEqual(['t1']);
    expect(step(peer.read('txnRecord', [b('t1')], [], NOW))).toMatchObject({ outcome: 'pending' });
    expect(peer.writeLock([b('a')])).toMatchObject({ txn: 't1' });
    expect(peer.size).toBe(1);
  });

  it('survives a restart: the intent count is rebuilt from the rows', () => {
    apply(prepare('t1', [set('a', '2')], { record: true }));
    h.restart();
    expect(h.sm.writeLock([b('a')])).toMatchObject({ txn: 't1' });
    expect(h.sm.staleIntents(NOW + TIMEOUT).map((s) => s.txn)).toEqual(['t1']);
    expect(h.sm.staleIntents(NOW + TIMEOUT - 1)).toEqual([]);
  });
});

describe('transaction step codec', () => {
  it('round-trips every step and answer', () => {
    const steps: KvCommand[] = [
      { ...prepare('t', [set('a', '1'), get('b')], { record: true, failure: [incr('c')], absent: ['a'] }) },
      { op: 'txnCommit', txn: 't', branch: 'failure', now: 5 },
      { op: 'txnAbort', txn: 't', coordinator: true, now: 5, session: { clientId: 'c', seq: 2, lowWater: 1 } },
      { op: 'txnResolve', txn: 't', branch: 'abort', now: 5 },
      { op: 'txnForget', txn: 't', now: 5 },
    ];
    for (const s of steps) expect(decodeCommand(encodeCommand(s))).toEqual(s);
    const answers: KvResult[] = [
      {
        type: 'txn',
        step: { outcome: 'prepared', held: false, success: [{ type: 'ok' }], failure: [{ type: 'nil' }] },
      },
      { type: 'txn', step: { outcome: 'conflict', txn: 'u', recordPartition: 3 } },
      { type: 'txn', step: { outcome: 'committed', branch: 'success' } },
      { type: 'txn', step: { outcome: 'pending', deadline: 9 } },
      { type: 'txn', step: { outcome: 'missing' } },
      { type: 'locked', txn: 'u', recordPartition: 2, deadline: 7, write: true },
    ];
    for (const a of answers) expect(decodeResponse(encodeResponse(a))).toEqual(a);
  });
});
