import { SeededRandom } from '@cohort/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type MultiKvInput,
  type MultiKvOperation,
  type MultiKvOutput,
  type TxnWrite,
  checkLinearizable,
  multiKvModel,
  prunedMultiKvHistory,
} from '../src/index.js';

const INF = Number.POSITIVE_INFINITY;

function op(client: number, input: MultiKvInput, output: MultiKvOutput | undefined, call: number, ret: number) {
  return { client, input, output, call, ret } satisfies MultiKvOperation;
}
const set = (key: string, value: string): MultiKvInput => ({ op: 'set', key, value });
const get = (key: string): MultiKvInput => ({ op: 'get', key });
const entries = (kv: string[]): { key: string; value: string }[] =>
  Array.from({ length: kv.length / 2 }, (_, i) => ({ key: kv[2 * i] as string, value: kv[2 * i + 1] as string }));
const mset = (...kv: string[]): MultiKvInput => ({ op: 'mset', entries: entries(kv) });
const msetnx = (...kv: string[]): MultiKvInput => ({ op: 'msetnx', entries: entries(kv) });
const mget = (...keys: string[]): MultiKvInput => ({ op: 'mget', keys });
const del = (...keys: string[]): MultiKvInput => ({ op: 'del', keys });
const check = (h: MultiKvOperation[]): string => checkLinearizable(multiKvModel, h).result;

describe('multi-key linearizability: MSET and MGET', () => {
  it('accepts an MGET concurrent with an MSET that sees all of it or none of it', () => {
    for (const seen of [
      ['', ''],
      ['1', '1'],
    ]) {
      expect(check([op(1, mset('a', '1', 'b', '1'), 'ok', 0, 10), op(2, mget('a', 'b'), seen, 5, 15)])).toBe('ok');
    }
  });

  it('rejects an MGET that observes part of an MSET', () => {
    const h = [op(1, mset('a', '1', 'b', '1'), 'ok', 0, 10), op(2, mget('a', 'b'), ['1', ''], 5, 15)];
    expect(check(h)).toBe('illegal');
  });

  it('rejects single-key reads that together observe part of an MSET in real-time order', () => {
    // b is read new, then a is read old: the MSET cannot be placed between them.
    const h = [
      op(1, mset('a', '1', 'b', '1'), 'ok', 0, 100),
      op(2, get('b'), '1', 10, 20),
      op(3, get('a'), '', 30, 40),
    ];
    expect(check(h)).toBe('illegal');
  });

  it('rejects an MGET that mixes a value from before and one from after a completed MSET', () => {
    const h = [
      op(1, mset('a', '1', 'b', '1'), 'ok', 0, 10),
      op(1, mset('a', '2', 'b', '2'), 'ok', 20, 30),
      op(2, mget('a', 'b'), ['1', '2'], 15, 35),
    ];
    expect(check(h)).toBe('illegal');
    const whole = [h[0], h[1], op(2, mget('a', 'b'), ['2', '2'], 15, 35)] as MultiKvOperation[];
    expect(check(whole)).toBe('ok');
  });

  it('lets an MSET of unknown outcome take effect whole, late, or never', () => {
    const pending = op(1, mset('a', '1', 'b', '1'), undefined, 0, INF);
    expect(check([pending, op(2, mget('a', 'b'), ['', ''], 5, 6), op(2, mget('a', 'b'), ['1', '1'], 7, 8)])).toBe('ok');
    expect(check([pending, op(2, mget('a', 'b'), ['', ''], 50, 60)])).toBe('ok');
    expect(check([pending, op(2, mget('a', 'b'), ['1', ''], 50, 60)])).toBe('illegal');
  });
});

describe('multi-key linearizability: MSETNX, DEL and transactions', () => {
  it('accepts MSETNX applying whole when no key exists, and refusing whole otherwise', () => {
    const h = [
      op(1, set('b', 'x'), 'ok', 0, 1),
      op(1, msetnx('a', '1', 'b', '1'), '0', 2, 3),
      op(1, mget('a', 'b'), ['', 'x'], 4, 5),
      op(1, del('b'), '1', 6, 7),
      op(1, msetnx('a', '1', 'b', '1'), '1', 8, 9),
      op(1, mget('a', 'b'), ['1', '1'], 10, 11),
    ];
    expect(check(h)).toBe('ok');
  });

  it('rejects an MSETNX that applied in part', () => {
    const h = [
      op(1, set('b', 'x'), 'ok', 0, 1),
      op(1, msetnx('a', '1', 'b', '1'), '0', 2, 3),
      op(1, get('a'), '1', 4, 5),
    ];
    expect(check(h)).toBe('illegal');
    const answeredWrong = [op(1, set('b', 'x'), 'ok', 0, 1), op(1, msetnx('a', '1', 'b', '1'), '1', 2, 3)];
    expect(check(answeredWrong)).toBe('illegal');
  });

  it('counts the keys a DEL removed', () => {
    expect(check([op(1, mset('a', '1', 'b', '1'), 'ok', 0, 1), op(1, del('a', 'b', 'c'), '2', 2, 3)])).toBe('ok');
    expect(check([op(1, mset('a', '1', 'b', '1'), 'ok', 0, 1), op(1, del('a', 'b', 'c'), '3', 2, 3)])).toBe('illegal');
  });

  it('applies a transaction’s success branch only when every compare holds, and its failure branch otherwise', () => {
    const transfer: MultiKvInput = {
      op: 'txn',
      compare: [
        { key: 'a', value: '10' },
        { key: 'b', value: '0' },
      ],
      success: [
        { op: 'set', key: 'a', value: '7' },
        { op: 'set', key: 'b', value: '3' },
      ],
      failure: [],
      read: ['a', 'b'],
    };
    const ok = [
      op(1, mset('a', '10', 'b', '0'), 'ok', 0, 1),
      op(1, transfer, { succeeded: true, values: ['10', '0'] }, 2, 3),
      op(1, mget('a', 'b'), ['7', '3'], 4, 5),
    ];
    expect(check(ok)).toBe('ok');
    const claimedFailure = [
      ok[0],
      op(1, transfer, { succeeded: false, values: ['10', '0'] }, 2, 3),
    ] as MultiKvOperation[];
    expect(check(claimedFailure)).toBe('illegal');
    const partial = [ok[0], ok[1], op(1, mget('a', 'b'), ['7', '0'], 4, 5)] as MultiKvOperation[];
    expect(check(partial)).toBe('illegal');
  });

  it('rejects two concurrent transactions that both succeed on the same compare (a lost update)', () => {
    const inc = (v: string): MultiKvInput => ({
      op: 'txn',
      compare: [{ key: 'a', value: '0' }],
      success: [{ op: 'set', key: 'a', value: v }],
      failure: [],
    });
    const h = [
      op(1, set('a', '0'), 'ok', 0, 1),
      op(2, inc('x'), { succeeded: true, values: [] }, 2, 10),
      op(3, inc('y'), { succeeded: true, values: [] }, 2, 10),
    ];
    expect(check(h)).toBe('illegal');
    const oneLoses = [h[0], h[1], op(3, inc('y'), { succeeded: false, values: [] }, 2, 10)] as MultiKvOperation[];
    expect(check(oneLoses)).toBe('ok');
  });

  it('checks unrelated keys apart and links keys through multi-key operations', () => {
    const h = [
      op(1, set('x', '1'), 'ok', 0, 1),
      op(2, mset('a', '1', 'b', '1'), 'ok', 0, 1),
      op(3, get('b'), '1', 2, 3),
      op(3, get('a'), '', 4, 5),
    ];
    const r = checkLinearizable(multiKvModel, h);
    expect(r.result).toBe('illegal');
    if (r.result === 'illegal') expect(r.partition).toEqual([1, 2, 3]);
  });

  it('drops unanswered reads before checking and keeps unanswered writes', () => {
    const h = [
      op(1, mget('a', 'b'), undefined, 0, INF),
      op(2, get('a'), undefined, 0, INF),
      op(3, mset('a', '1', 'b', '1'), undefined, 0, INF),
      op(4, { op: 'txn', compare: [], success: [], failure: [], read: ['a'] }, undefined, 0, INF),
    ];
    expect(prunedMultiKvHistory(h).map((o) => o.client)).toEqual([3]);
  });
});

/** A history from really executing random multi-key ops atomically inside their intervals: always linearizable. */
function atomicHistory(seed: number, n: number, pendingRate: number): MultiKvOperation[] {
  const r = new SeededRandom(seed);
  const state = new Map<string, string>();
  const keys = ['a', 'b', 'c', 'd'];
  const pick = (): string[] => keys.filter(() => r.int(0, 1) === 0).slice(0, 3);
  const ops: MultiKvOperation[] = [];
  const clientFree = [0, 0, 0];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += r.int(0, 3);
    const client = r.int(0, clientFree.length - 1);
    const call = Math.max(clientFree[client] ?? 0, t - r.int(0, 10));
    const at = Math.max(call, t);
    t = at;
    const ks = pick();
    if (ks.length === 0) ks.push('a');
    const value = `[${i}]`;
    let input: MultiKvInput;
    let output: MultiKvOutput;
    const kind = r.int(0, 3);
    if (kind === 0) {
      input = mget(...ks);
      output = ks.map((k) => state.get(k) ?? '');
    } else if (kind === 1) {
      input = mset(...ks.flatMap((k) => [k, value]));
      for (const k of ks) state.set(k, value);
      output = 'ok';
    } else if (kind === 2) {
      input = del(...ks);
      output = String(ks.filter((k) => state.delete(k)).length);
    } else {
      const compare = [{ key: ks[0] as string, value: state.get(ks[0] as string) ?? '' }];
      if (r.int(0, 1) === 0) compare[0] = { key: compare[0]?.key as string, value: '[nope]' };
      const success: TxnWrite[] = ks.map((k) => ({ op: 'set', key: k, value }));
      const failure: TxnWrite[] = [{ op: 'del', key: ks[0] as string }];
      input = { op: 'txn', compare, success, failure, read: ks };
      const values = ks.map((k) => state.get(k) ?? '');
      const succeeded = compare.every((c) => (state.get(c.key) ?? '') === c.value);
      for (const w of succeeded ? success : failure) {
        if (w.op === 'set') state.set(w.key, w.value);
        else state.delete(w.key);
      }
      output = { succeeded, values };
    }
    const pending = r.next() < pendingRate;
    const ret = pending ? INF : at + r.int(0, 10);
    const id = pending ? 100 + i : client;
    if (!pending) clientFree[client] = ret + 1;
    ops.push(op(id, input, pending ? undefined : output, call, ret));
  }
  return ops;
}

describe('multi-key linearizability: generated histories', () => {
  it('accepts every history produced by an atomic execution', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 40 }), (seed, n) => {
        const h = atomicHistory(seed, n, 0.1);
        expect(checkLinearizable(multiKvModel, prunedMultiKvHistory(h)).result).toBe('ok');
      }),
      { numRuns: 150 },
    );
  });

  it('rejects the same histories once a completed MGET sees one key of a later MSET but not another', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 5, max: 40 }), (seed, n) => {
        const h = atomicHistory(seed, n, 0);
        const end = Math.max(...h.map((o) => o.ret));
        h.push(op(50, mset('a', 'fresh', 'b', 'fresh'), 'ok', end + 1, end + 2));
        // The MGET overlaps the MSET: all-new or all-old would do, a mix never does.
        h.push(op(51, mget('a', 'b'), ['fresh', ''], end + 1, end + 4));
        expect(checkLinearizable(multiKvModel, prunedMultiKvHistory(h)).result).toBe('illegal');
      }),
      { numRuns: 100 },
    );
  });
});
