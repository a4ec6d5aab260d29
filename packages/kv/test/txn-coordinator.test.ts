import type { Clock } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import {
  type KvRequest,
  type KvResponse,
  KvStateMachine,
  SlotMap,
  TxnCoordinator,
  type TxnCoordinatorOptions,
  type TxnStepEvent,
  encodeCommand,
} from '../src/index.js';
import { b, text } from './harness.js';

const slots = new SlotMap(3);
/** Keys of each partition (p0, p1, p2), found once. */
const keysOf: string[][] = [[], [], []];
for (let i = 0; keysOf.some((k) => k.length < 3); i++) {
  const k = `k${i}`;
  const list = keysOf[slots.partitionOfKey(b(k))]!;
  if (list.length < 3) list.push(k);
}
const [a, c, e] = [keysOf[0]![0]!, keysOf[1]![0]!, keysOf[2]![0]!];

/** A clock whose timers fire on the next turn (backoffs take no time). */
const clock: Clock = {
  now: () => 0,
  setTimeout: (fn) => {
    setImmediate(fn);
    return {};
  },
  clearTimeout: () => {},
  defer: (fn) => setImmediate(fn),
};

/** Three partitions, each one state machine that applies every write at once. */
function cluster(over: Partial<TxnCoordinatorOptions> = {}) {
  const machines = [0, 1, 2].map((p) => new KvStateMachine(undefined, `p${p}`));
  const next = [0, 0, 0];
  const execute = async (p: number, req: KvRequest): Promise<KvResponse> => {
    const m = machines[p]!;
    if (req.kind === 'read') return m.read(req.op as 'get', req.keys, req.args ?? [], 1000);
    return m.apply(++next[p]!, encodeCommand({ ...req.command, now: 1000 }));
  };
  const events: TxnStepEvent[] = [];
  const coordinator = new TxnCoordinator({
    slots,
    partition: (p) => ({ execute: (req) => execute(p, req) }),
    clock,
    wallClock: () => 1000,
    random: () => 0.5,
    clientId: 'n1#1',
    observe: (ev) => events.push(ev),
    ...over,
  });
  return { machines, coordinator, execute, events };
}

const set = (key: string, value: string) =>
  ({
    op: 'set',
    key: b(key),
    value: b(value),
    condition: 'always',
    expiry: { kind: 'none' },
    returnOld: false,
  }) as const;

describe('TxnCoordinator', () => {
  it('commits a write on keys of three partitions: every key written, no intent or record left behind', async () => {
    const { machines, coordinator, events } = cluster();
    const r = await coordinator.run({
      compares: [],
      success: [{ op: 'mset', keys: [b(a), b(c), b(e)], values: [b('1'), b('2'), b('3')] }, set(c, '4')],
      failure: [],
    });
    expect(r).toMatchObject({ type: 'txn', succeeded: true, results: [{ type: 'ok' }, { type: 'ok' }] });
    await coordinator.settled();
    expect(machines.map((m, p) => text(m.get(b([a, c, e][p]!), 1000)))).toEqual(['1', '4', '3']);
    expect(machines.flatMap((m) => m.intents())).toEqual([]);
    const id = r.type === 'txn' ? r.txn : '';
    expect(machines[0]!.read('txnRecord', [b(id)], [], 1000)).toEqual({ type: 'txn', step: { outcome: 'missing' } });
    expect(events.filter((ev) => ev.phase === 'send').map((ev) => ev.step)).toEqual([
      'txnPrepare',
      'txnPrepare',
      'txnPrepare',
      'txnCommit',
      'txnResolve',
      'txnResolve',
      'txnResolve',
      'txnForget',
    ]);
  });

  it('applies the failure branch when a comparison fails, and answers its results (EXEC with a changed WATCH: not succeeded)', async () => {
    const { machines, coordinator } = cluster();
    await coordinator.run({ compares: [], success: [set(a, 'x'), set(c, 'y')], failure: [] });
    const r = await coordinator.run({
      compares: [
        { key: b(a), compare: { kind: 'absent' } },
        { key: b(e), compare: { kind: 'absent' } },
      ],
      success: [set(a, 'no'), set(e, 'no')],
      failure: [{ op: 'del', keys: [b(c), b(e)] }],
    });
    expect(r).toMatchObject({ succeeded: false, results: [{ type: 'int', value: 1n }] });
    await coordinator.settled();
    expect(text(machines[0]!.get(b(a), 1000))).toBe('x');
    expect(machines[1]!.get(b(c), 1000)).toBeUndefined();
  });

  it('retries under a new id after meeting an intent, and answers TRYAGAIN when it stays', async () => {
    const { coordinator, execute, machines } = cluster({ maxAttempts: 3 });
    await execute(1, {
      kind: 'write',
      command: {
        op: 'txnPrepare',
        txn: 'other',
        recordPartition: 1,
        participants: [1],
        compares: [],
        success: [{ op: 'set', key: b(c), value: b('o'), condition: 'always', expiresAt: 0, returnOld: false, now: 0 }],
        failure: [],
        timeoutMs: 5000,
        now: 0,
      },
    });
    const r = await coordinator.run({ compares: [], success: [set(a, '1'), set(c, '2')], failure: [] });
    expect(r).toMatchObject({ type: 'error', message: expect.stringMatching(/^TRYAGAIN /) });
    await coordinator.settled();
    // Its own intents were dropped; the other transaction's stays.
    expect(machines.flatMap((m) => m.intents()).map((i) => i.txn)).toEqual(['other']);
    expect(machines[0]!.get(b(a), 1000)).toBeUndefined();
  });

  it('takes the one-entry path on one partition with WATCH-style comparisons', async () => {
    const [x, y] = keysOf[2]!;
    const { coordinator, events } = cluster();
    const r = await coordinator.run({
      compares: [{ key: b(x!), compare: { kind: 'modRevision', value: 0 } }],
      success: [set(x!, '1'), set(y!, '2')],
      failure: [],
    });
    expect(r).toMatchObject({ succeeded: true, results: [{ type: 'ok' }, { type: 'ok' }] });
    expect(events.map((ev) => ev.step)).toEqual(['exec', 'exec']);
    const again = await coordinator.run({
      compares: [{ key: b(x!), compare: { kind: 'modRevision', value: 0 } }],
      success: [set(x!, '3')],
      failure: [],
    });
    expect(again).toMatchObject({ succeeded: false, results: [] });
  });

  it('refuses before writing anything: an operation whose keys span partitions, a keyspace-wide one, too many keys', async () => {
    const { coordinator, events } = cluster({ maxKeys: 4 });
    const rename = await coordinator.run({
      compares: [],
      success: [{ op: 'rename', key: b(a), dest: b(c), nx: false }],
      failure: [],
    });
    expect(rename).toEqual({
      type: 'error',
      message: expect.stringContaining('RENAME names keys of different partitions'),
    });
    const flush = await coordinator.run({ compares: [], success: [{ op: 'flush' }, set(a, '1')], failure: [] });
    expect(flush).toMatchObject({ type: 'error', message: expect.stringContaining('FLUSH') });
    const big = await coordinator.run({
      compares: [],
      success: [{ op: 'del', keys: [a, c, e, 'q', 'r'].map(b) }],
      failure: [],
    });
    expect(big).toEqual({ type: 'error', message: 'ERR the transaction touches 5 keys, over the limit of 4' });
    expect(events).toEqual([]);
  });
});
