import { CodecError } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { KvCommandPb } from '../src/generated/kv-command.js';
import {
  type KvCommand,
  type KvOp,
  type KvResult,
  KvStateMachine,
  decodeCommand,
  decodeResponse,
  encodeCommand,
  encodeResponse,
  globMatch,
} from '../src/index.js';
import { addLongDouble, formatLongDouble, parseLongDouble } from '../src/long-double.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const NOW = 1_000_000;

/** A machine and a function applying ops to it at successive indexes, at log time NOW. */
function machine(): { sm: KvStateMachine; run: (op: KvOp) => KvResult } {
  const sm = new KvStateMachine();
  let index = 0;
  return { sm, run: (op) => sm.apply(++index, encodeCommand({ ...op, now: NOW } as KvCommand)) };
}

const set = (key: string, value: string, expiresAt = 0): KvOp => ({
  op: 'set',
  key: b(key),
  value: b(value),
  condition: 'always',
  expiresAt,
  returnOld: false,
  now: NOW,
});
const bulk = (s: string): KvResult => ({ type: 'bulk', value: b(s) });
const int = (n: number): KvResult => ({ type: 'int', value: BigInt(n) });

describe("INCRBYFLOAT's long double arithmetic", () => {
  // Each sum as redis-server 7.0 answers INCRBYFLOAT (x87 80-bit long double, %.17Lf, zeros trimmed).
  it.each([
    ['10.50', '0.1', '10.6'],
    ['0', '0.1', '0.1'],
    ['0.1', '0.2', '0.3'],
    ['1000.1', '0.1', '1000.19999999999999996'],
    ['5.0e3', '2.0e2', '5200'],
    ['3', '-0.3', '2.7'],
    ['-5', '5', '0'],
    ['1', '.5', '1.5'],
  ])('%s + %s = %s', (a, inc, sum) => {
    const x = parseLongDouble(a)!;
    const y = parseLongDouble(inc)!;
    expect(formatLongDouble(addLongDouble(x, y)!)).toBe(sum);
  });

  it('refuses what strtold would not take whole, and sums that are not finite', () => {
    for (const bad of ['', ' 1', '1 ', 'abc', '1e5000', '0x10', '1e-5000', 'nan'])
      expect(parseLongDouble(bad)).toBeUndefined();
    expect(addLongDouble(parseLongDouble('inf')!, parseLongDouble('1')!)).toBeUndefined();
  });
});

describe('glob patterns as Redis matches them', () => {
  it.each([
    ['*', 'anything/at all', true],
    ['h?llo', 'hello', true],
    ['h?llo', 'hllo', false],
    ['h*llo', 'heeeello', true],
    ['h[ae]llo', 'hallo', true],
    ['h[ae]llo', 'hillo', false],
    ['h[^e]llo', 'hallo', true],
    ['h[^e]llo', 'hello', false],
    ['h[a-b]llo', 'hbllo', true],
    ['h[b-a]llo', 'hallo', true],
    ['h\\?llo', 'h?llo', true],
    ['h\\?llo', 'hallo', false],
    ['[a', 'a', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'aXbY', false],
    ['', '', true],
    ['*', '', false],
  ])('%j against %j: %s', (pattern, key, want) => {
    expect(globMatch(b(pattern), b(key))).toBe(want);
  });
});

describe('string and keyspace operations', () => {
  it('SET ... GET answers the old value whether or not NX/XX let the write happen', () => {
    const { sm, run } = machine();
    run(set('k', 'old'));
    expect(run({ ...set('k', 'new'), condition: 'nx', returnOld: true } as KvOp)).toEqual(bulk('old'));
    expect(Buffer.from(sm.get(b('k'), NOW)!).toString()).toBe('old');
    expect(run({ ...set('absent', 'v'), condition: 'nx', returnOld: true } as KvOp)).toEqual({ type: 'nil' });
    expect(Buffer.from(sm.get(b('absent'), NOW)!).toString()).toBe('v');
  });

  it('APPEND, SETRANGE and INCRBYFLOAT keep the expiry; SETRANGE zero-pads; GETEX sets or drops it', () => {
    const { sm, run } = machine();
    run(set('k', 'ab', NOW + 5000));
    expect(run({ op: 'append', key: b('k'), value: b('cd'), now: NOW })).toEqual(int(4));
    expect(run({ op: 'setrange', key: b('k'), offset: 6, value: b('x'), now: NOW })).toEqual(int(7));
    expect(Buffer.from(sm.get(b('k'), NOW)!)).toEqual(Buffer.from('abcd\0\0x'));
    expect(sm.ttl(b('k'), NOW)).toBe(5000);
    expect(run({ op: 'setrange', key: b('none'), offset: 9, value: b(''), now: NOW })).toEqual(int(0));
    expect(sm.has(b('none'), NOW)).toBe(false);
    expect(run({ op: 'setrange', key: b('k'), offset: 16 * 1024 * 1024, value: b('x'), now: NOW })).toEqual({
      type: 'error',
      message: 'ERR string exceeds maximum allowed size (proto-max-bulk-len)',
    });
    expect(run({ op: 'getex', key: b('k'), expiry: 'persist', deadline: 0, now: NOW })).toEqual(bulk('abcd\0\0x'));
    expect(sm.ttl(b('k'), NOW)).toBe(-1);
    run({ op: 'getex', key: b('k'), expiry: 'at', deadline: NOW - 1, now: NOW });
    expect(sm.has(b('k'), NOW)).toBe(false);
  });

  it('RENAME moves the value with its expiry; RENAMENX and COPY refuse an existing destination', () => {
    const { sm, run } = machine();
    run(set('a', '1', NOW + 9000));
    run(set('b', '2'));
    expect(run({ op: 'rename', key: b('a'), dest: b('c'), nx: false, now: NOW })).toEqual({ type: 'ok' });
    expect(sm.ttl(b('c'), NOW)).toBe(9000);
    expect(sm.has(b('a'), NOW)).toBe(false);
    expect(run({ op: 'rename', key: b('a'), dest: b('c'), nx: false, now: NOW })).toEqual({
      type: 'error',
      message: 'ERR no such key',
    });
    expect(run({ op: 'rename', key: b('c'), dest: b('b'), nx: true, now: NOW })).toEqual(int(0));
    expect(run({ op: 'copy', key: b('c'), dest: b('b'), replace: false, now: NOW })).toEqual(int(0));
    expect(run({ op: 'copy', key: b('c'), dest: b('b'), replace: true, now: NOW })).toEqual(int(1));
    expect(sm.ttl(b('b'), NOW)).toBe(9000);
    expect(run({ op: 'flush', now: NOW })).toEqual({ type: 'ok' });
    expect(sm.size).toBe(0);
  });
});

describe('EXEC', () => {
  it('applies its writes and reads in one entry, an error answer not stopping the rest', () => {
    const { sm, run } = machine();
    const res = run({
      op: 'exec',
      ops: [
        set('x', 'a'),
        { op: 'incr', key: b('x'), delta: 1n, now: NOW },
        { op: 'append', key: b('x'), value: b('b'), now: NOW },
        { op: 'read', read: 'mget', keys: [b('x'), b('y')], args: [], now: NOW },
      ],
      watch: [],
      now: NOW,
    });
    expect(res).toEqual({
      type: 'list',
      items: [
        { type: 'ok' },
        { type: 'error', message: 'ERR value is not an integer or out of range' },
        int(2),
        { type: 'list', items: [bulk('ab'), { type: 'nil' }] },
      ],
    });
    expect(sm.appliedIndex).toBe(1);
  });

  it('applies nothing and answers a nil list when a watched key changed since its revision was read', () => {
    const { sm, run } = machine();
    run(set('w', '1'));
    const seen = sm.read('revisions', [b('w')], [], NOW);
    if (seen.type !== 'list' || seen.items?.[0]?.type !== 'bulk')
      throw new Error('revisions are a list of bulk strings');
    const revision = Number(Buffer.from(seen.items[0].value).toString());
    expect(revision).toBe(1);
    const tx: KvOp = { op: 'exec', ops: [set('w', 'mine')], watch: [{ key: b('w'), revision }], now: NOW };
    run(set('w', '2'));
    expect(run(tx)).toEqual({ type: 'list', items: null });
    expect(Buffer.from(sm.get(b('w'), NOW)!).toString()).toBe('2');
    expect(run({ ...tx, watch: [{ key: b('w'), revision: 2 }] } as KvOp)).toEqual({
      type: 'list',
      items: [{ type: 'ok' }],
    });
  });

  it('round-trips through its encoding, and its answers through the response encoding', () => {
    const cmd: KvCommand = {
      op: 'exec',
      ops: [
        { op: 'getex', key: b('k'), expiry: 'at', deadline: 77, now: 5 },
        { op: 'read', read: 'scan', keys: [], args: [b(''), b('*'), b('10'), b('')], now: 5 },
        { op: 'mset', keys: [b('a')], values: [b('1')], nx: true, now: 5 },
      ],
      watch: [{ key: b('k'), revision: 3 }],
      now: 5,
      session: { clientId: 'c', seq: 2, lowWater: 1 },
    };
    expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
    const answer: KvResult = { type: 'list', items: [bulk('v'), { type: 'list', items: null }, int(1)] };
    expect(decodeResponse(encodeResponse(answer))).toEqual(answer);
  });

  it('refuses an EXEC inside an EXEC and a read outside one when decoding', () => {
    expect(() =>
      encodeCommand({ op: 'exec', ops: [{ op: 'exec', ops: [], watch: [], now: 1 }], watch: [], now: 1 }),
    ).toThrow();
    const read = encodeCommand({
      op: 'exec',
      ops: [{ op: 'read', read: 'get', keys: [b('k')], args: [], now: 1 }],
      watch: [],
      now: 1,
    });
    expect(() => decodeCommand(read)).not.toThrow();
    // The same read as a top-level command: the encoder does not write one, so its bytes are taken from the EXEC's.
    expect(() => encodeCommand({ op: 'read', read: 'get', keys: [b('k')], args: [], now: 1 } as KvCommand)).toThrow(
      CodecError,
    );
    const lone = KvCommandPb.decode(read).batch[0] as Uint8Array;
    expect(() => decodeCommand(lone)).toThrow(CodecError);
  });
});
