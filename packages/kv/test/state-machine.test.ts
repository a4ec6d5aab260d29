import { CodecError } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { type KvCommand, KvStateMachine, decodeCommand, encodeCommand } from '../src/index.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const text = (v: Uint8Array | undefined): string | undefined =>
  v === undefined ? undefined : Buffer.from(v).toString();

const set = (key: string, value: string, extra: Partial<Extract<KvCommand, { op: 'set' }>> = {}): Uint8Array =>
  encodeCommand({
    op: 'set',
    key: b(key),
    value: b(value),
    condition: 'always',
    expiresAt: 0,
    returnOld: false,
    now: 1000,
    ...extra,
  });
const del = (...keys: string[]): Uint8Array => encodeCommand({ op: 'del', keys: keys.map(b), now: 1000 });
const incr = (key: string, delta: bigint): Uint8Array => encodeCommand({ op: 'incr', key: b(key), delta, now: 1000 });

describe('KV commands', () => {
  it('round-trip through their encoding', () => {
    const cmds: KvCommand[] = [
      { op: 'set', key: b('k'), value: b('v'), condition: 'nx', expiresAt: 5000, returnOld: true, now: 7 },
      { op: 'del', keys: [b('a'), b('b')], now: 1 },
      { op: 'incr', key: b('n'), delta: -3n, now: 2 },
      { op: 'mset', keys: [b('a'), b('b')], values: [b('1'), b('2')], now: 3 },
      {
        op: 'set',
        key: b('k'),
        value: b('v'),
        condition: 'always',
        expiresAt: 0,
        returnOld: false,
        keepTtl: true,
        now: 4,
        session: { clientId: 'c1', seq: 9, lowWater: 7 },
      },
      { op: 'expire', key: b('k'), deadline: -5, flag: 'gt', now: 5 },
      { op: 'persist', key: b('k'), now: 6 },
      { op: 'delExpired', keys: [b('a')], now: 7, session: { clientId: 'sweeper', seq: 1, lowWater: 0 } },
      { op: 'checksum', now: 8 },
    ];
    for (const cmd of cmds) expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
  });

  it('reject garbage bytes with a CodecError', () => {
    expect(() => decodeCommand(new Uint8Array([0xff, 0xff, 0xff]))).toThrow(CodecError);
  });

  it('round-trip 64-bit numbers between 2^31 and 2^32 (protobuf varints past a signed 32-bit integer)', () => {
    // Before the protons-runtime patch (pnpm-workspace.yaml) these wrote one byte of five, and the rest of
    // the frame from whatever the buffer pool held: a client's compare number could poison a log entry.
    for (const n of [2 ** 31, 3_000_000_000, 2 ** 32 - 1]) {
      const cmds: KvCommand[] = [
        {
          op: 'cond',
          key: b('k'),
          compare: { kind: 'version', value: n, op: '<' },
          action: { kind: 'put', value: b('v'), expiresAt: n },
          now: n,
        },
        { op: 'persist', key: b('k'), now: 1, session: { clientId: 'c', seq: n, lowWater: n - 1 } },
      ];
      for (const cmd of cmds) expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
    }
  });
});

describe('KvStateMachine', () => {
  it('SET stores, GET reads, DEL counts the keys it removed (OK, 1/0)', () => {
    const sm = new KvStateMachine();
    expect(sm.apply(1, set('a', '1'))).toEqual({ type: 'ok' });
    expect(text(sm.get(b('a'), 1000))).toBe('1');
    expect(sm.apply(2, del('a', 'missing'))).toEqual({ type: 'int', value: 1n });
    expect(sm.apply(3, del('a'))).toEqual({ type: 'int', value: 0n });
    expect(sm.get(b('a'), 1000)).toBeUndefined();
    expect(sm.appliedIndex).toBe(3);
  });

  it('SET NX only creates, SET XX only replaces, SET GET returns the previous value', () => {
    const sm = new KvStateMachine();
    expect(sm.apply(1, set('a', '1', { condition: 'xx' }))).toEqual({ type: 'nil' });
    expect(sm.has(b('a'), 1000)).toBe(false);
    expect(sm.apply(2, set('a', '1', { condition: 'nx' }))).toEqual({ type: 'ok' });
    expect(sm.apply(3, set('a', '2', { condition: 'nx' }))).toEqual({ type: 'nil' });
    expect(sm.apply(4, set('a', '3', { condition: 'xx', returnOld: true }))).toEqual({ type: 'bulk', value: b('1') });
    expect(text(sm.get(b('a'), 1000))).toBe('3');
  });

  it('expires keys by the command time, the same on every replica', () => {
    const sm = new KvStateMachine();
    sm.apply(1, set('t', 'v', { expiresAt: 2000 }));
    expect(sm.ttl(b('t'), 1500)).toBe(500);
    expect(sm.get(b('t'), 2000)).toBeUndefined();
    // NX at a time after the expiry sees the key as absent.
    expect(sm.apply(2, set('t', 'w', { condition: 'nx', now: 2500 }))).toEqual({ type: 'ok' });
    expect(sm.ttl(b('t'), 2500)).toBe(-1);
  });

  it('INCR counts in 64-bit integers and refuses non-integers and overflow', () => {
    const sm = new KvStateMachine();
    expect(sm.apply(1, incr('n', 1n))).toEqual({ type: 'int', value: 1n });
    expect(sm.apply(2, incr('n', 41n))).toEqual({ type: 'int', value: 42n });
    sm.apply(3, set('s', 'abc'));
    expect(sm.apply(4, incr('s', 1n))).toMatchObject({ type: 'error' });
    sm.apply(5, set('max', (2n ** 63n - 1n).toString()));
    expect(sm.apply(6, incr('max', 1n))).toEqual({
      type: 'error',
      message: 'ERR increment or decrement would overflow',
    });
    expect(text(sm.get(b('max'), 0))).toBe((2n ** 63n - 1n).toString());
  });

  it('MSET sets every pair', () => {
    const sm = new KvStateMachine();
    sm.apply(1, encodeCommand({ op: 'mset', keys: [b('x'), b('y')], values: [b('1'), b('2')], now: 0 }));
    expect([text(sm.get(b('x'), 0)), text(sm.get(b('y'), 0))]).toEqual(['1', '2']);
  });

  it('keeps binary keys distinct', () => {
    const sm = new KvStateMachine();
    sm.apply(
      1,
      encodeCommand({
        op: 'mset',
        keys: [new Uint8Array([0xff]), new Uint8Array([0xc3, 0xbf])],
        values: [b('a'), b('b')],
        now: 0,
      }),
    );
    expect(text(sm.get(new Uint8Array([0xff]), 0))).toBe('a');
    expect(text(sm.get(new Uint8Array([0xc3, 0xbf]), 0))).toBe('b');
    expect(sm.size).toBe(2);
  });
});
