import { SeededRandom } from '@cohort/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type KvInput, type KvOperation, checkLinearizable, kvModel, prunedKvHistory } from '../src/index.js';

const INF = Number.POSITIVE_INFINITY;

function op(client: number, input: KvInput, output: string | undefined, call: number, ret: number): KvOperation {
  return { client, input, output, call, ret };
}
const set = (key: string, value: string): KvInput => ({ op: 'set', key, value });
const incr = (key: string): KvInput => ({ op: 'incr', key });
const get = (key: string): KvInput => ({ op: 'get', key });

describe('linearizability checker: hand-written histories', () => {
  it('accepts a read concurrent with a write returning either value', () => {
    for (const seen of ['', 'x']) {
      const h = [op(1, set('k', 'x'), 'ok', 0, 10), op(2, get('k'), seen, 5, 15)];
      expect(checkLinearizable(kvModel, h).result).toBe('ok');
    }
  });

  it('rejects a stale read after a completed write', () => {
    const h = [op(1, set('k', 'x'), 'ok', 0, 10), op(2, get('k'), '', 11, 12)];
    expect(checkLinearizable(kvModel, h).result).toBe('illegal');
  });

  it('rejects a read that goes back in time (new value, then old)', () => {
    const h = [op(1, set('k', 'x'), 'ok', 0, 100), op(2, get('k'), 'x', 10, 20), op(3, get('k'), '', 30, 40)];
    expect(checkLinearizable(kvModel, h).result).toBe('illegal');
  });

  it('accepts increments whose answers follow real time', () => {
    const h = [op(1, incr('n'), '1', 0, 10), op(2, incr('n'), '2', 5, 30), op(3, get('n'), '2', 31, 40)];
    expect(checkLinearizable(kvModel, h).result).toBe('ok');
    const overlapping = [op(1, incr('n'), '2', 0, 10), op(2, incr('n'), '1', 5, 30)];
    expect(checkLinearizable(kvModel, overlapping).result).toBe('ok');
  });

  it('rejects an increment applied twice, and increments reordered against real time', () => {
    const twice = [op(1, incr('n'), '1', 0, 10), op(2, get('n'), '2', 11, 12)];
    expect(checkLinearizable(kvModel, twice).result).toBe('illegal');
    const reordered = [op(1, incr('n'), '2', 0, 10), op(2, incr('n'), '1', 11, 20)];
    expect(checkLinearizable(kvModel, reordered).result).toBe('illegal');
  });

  it('lets an increment of unknown outcome count once or never', () => {
    const once = [op(1, incr('n'), undefined, 0, INF), op(2, incr('n'), '2', 5, 10)];
    expect(checkLinearizable(kvModel, prunedKvHistory(once)).result).toBe('ok');
    const never = [op(1, incr('n'), undefined, 0, INF), op(2, incr('n'), '1', 5, 10)];
    expect(checkLinearizable(kvModel, prunedKvHistory(never)).result).toBe('ok');
    const beyond = [op(1, incr('n'), undefined, 0, INF), op(2, incr('n'), '3', 5, 10)];
    expect(checkLinearizable(kvModel, prunedKvHistory(beyond)).result).toBe('illegal');
  });

  it('answers an increment of a non-integer with an error and keeps the value', () => {
    const h = [op(1, set('k', 'x'), 'ok', 0, 1), op(2, incr('k'), 'error', 2, 3), op(3, get('k'), 'x', 4, 5)];
    expect(checkLinearizable(kvModel, h).result).toBe('ok');
    const wrong = [op(1, set('k', 'x'), 'ok', 0, 1), op(2, incr('k'), '1', 2, 3)];
    expect(checkLinearizable(kvModel, wrong).result).toBe('illegal');
  });

  it('lets an operation with unknown outcome take effect late, or never', () => {
    const late = [op(1, set('k', 'x'), undefined, 0, INF), op(2, get('k'), '', 10, 20), op(2, get('k'), 'x', 30, 40)];
    expect(checkLinearizable(kvModel, late).result).toBe('ok');
    const never = [op(1, set('k', 'x'), undefined, 0, INF), op(2, get('k'), '', 30, 40)];
    expect(checkLinearizable(kvModel, never).result).toBe('ok');
  });

  it('still rejects a value nobody wrote', () => {
    const h = [op(1, set('k', 'x'), undefined, 0, INF), op(2, get('k'), 'y', 10, 20)];
    expect(checkLinearizable(kvModel, h).result).toBe('illegal');
  });

  it('checks keys independently and names the failing partition', () => {
    const h = [
      op(1, set('a', '1'), 'ok', 0, 10),
      op(2, set('b', '1'), 'ok', 0, 10),
      op(1, get('a'), '1', 20, 30),
      op(2, get('b'), '', 20, 30),
    ];
    const r = checkLinearizable(kvModel, h);
    expect(r.result).toBe('illegal');
    if (r.result === 'illegal') expect(r.partition).toEqual([1, 3]);
  });

  it('drops unanswered reads and unobserved SETs of unknown outcome before checking, and keeps INCRs', () => {
    const h = [
      op(1, get('k'), undefined, 0, INF),
      op(2, set('k', '[x]'), 'ok', 0, 1),
      op(3, set('k', '[y]'), undefined, 0, INF),
      op(4, set('k', '[z]'), undefined, 0, INF),
      op(5, get('k'), '[z]', 5, 6),
      op(6, incr('n'), undefined, 0, INF),
    ];
    expect(prunedKvHistory(h).map((o) => o.client)).toEqual([2, 4, 5, 6]);
    expect(checkLinearizable(kvModel, prunedKvHistory(h)).result).toBe('ok');
  });

  it('stays fast with many operations of unknown outcome', () => {
    const h: KvOperation[] = [];
    for (let i = 0; i < 40; i++) h.push(op(10 + i, set('k', `[p${i}]`), undefined, i, INF));
    h.push(op(1, get('k'), '[p3]', 100, 101));
    h.push(op(2, get('k'), '[p7]', 102, 103));
    expect(checkLinearizable(kvModel, prunedKvHistory(h), { maxSteps: 100_000 }).result).toBe('ok');
    h.push(op(3, get('k'), '[p3]', 104, 105));
    expect(checkLinearizable(kvModel, prunedKvHistory(h), { maxSteps: 100_000 }).result).toBe('illegal');
  });
});

describe('linearizability checker: unanswered increments', () => {
  it('stays fast with many INCRs of unknown outcome, and still rejects a count no subset explains', () => {
    const h: KvOperation[] = [];
    for (let i = 0; i < 60; i++) h.push(op(10 + i, incr('n'), undefined, i, INF));
    h.push(op(1, get('n'), '17', 100, 101));
    h.push(op(2, incr('n'), '31', 102, 103));
    expect(checkLinearizable(kvModel, h, { maxSteps: 100_000 }).result).toBe('ok');
    h.push(op(3, get('n'), '30', 104, 105));
    expect(checkLinearizable(kvModel, h, { maxSteps: 100_000 }).result).toBe('illegal');
  });
});

/** A history produced by really executing ops atomically at points inside their intervals: always linearizable. */
function linearizableHistory(seed: number, n: number, pendingRate: number): KvOperation[] {
  const r = new SeededRandom(seed);
  const state = new Map<string, string>();
  const ops: KvOperation[] = [];
  const clientFree = [0, 0, 0, 0];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += r.int(0, 3);
    const client = r.int(0, clientFree.length - 1);
    const call = Math.max(clientFree[client] ?? 0, t - r.int(0, 10));
    const at = Math.max(call, t);
    // Linearization points follow execution order.
    t = at;
    const key = ['a', 'b', 'n'][r.int(0, 2)] as string;
    const write = r.int(0, 1) === 0;
    const value = `[${i}]`;
    const input: KvInput = !write ? get(key) : key === 'n' ? incr(key) : set(key, value);
    let output = 'ok';
    if (input.op === 'set') state.set(key, value);
    else if (input.op === 'incr') {
      output = String(Number(state.get(key) ?? '0') + 1);
      state.set(key, output);
    } else output = state.get(key) ?? '';
    const pending = r.next() < pendingRate;
    const ret = pending ? INF : at + r.int(0, 10);
    // A pending client is stuck for good; give the op to a fresh client id.
    const id = pending ? 100 + i : client;
    if (!pending) clientFree[client] = ret + 1;
    ops.push(op(id, input, pending ? undefined : output, call, ret));
  }
  return ops;
}

describe('linearizability checker: generated histories', () => {
  it('accepts every history produced by an atomic execution', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 60 }), (seed, n) => {
        const h = linearizableHistory(seed, n, 0.1);
        expect(checkLinearizable(kvModel, prunedKvHistory(h)).result).toBe('ok');
      }),
      { numRuns: 200 },
    );
  });

  it('rejects the same histories once a completed read returns a value never written', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 5, max: 60 }), (seed, n) => {
        const h = linearizableHistory(seed, n, 0.1);
        const reads = h.filter((o) => o.input.op === 'get' && o.output !== undefined);
        fc.pre(reads.length > 0);
        (reads[0] as KvOperation).output = 'never-written';
        expect(checkLinearizable(kvModel, prunedKvHistory(h)).result).toBe('illegal');
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a read that misses a write completed strictly before it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 5, max: 40 }), (seed, n) => {
        const h = linearizableHistory(seed, n, 0);
        const end = Math.max(...h.map((o) => o.ret));
        h.push(op(50, set('a', 'fresh'), 'ok', end + 1, end + 2));
        h.push(op(51, get('a'), 'stale', end + 3, end + 4));
        expect(checkLinearizable(kvModel, h).result).toBe('illegal');
      }),
      { numRuns: 100 },
    );
  });
});
