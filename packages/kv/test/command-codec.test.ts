import { CodecError } from '@cohort/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  COLLECTION_WRITES,
  type ExecRead,
  type KvCommand,
  type KvCompare,
  type KvOp,
  decodeCommand,
  encodeCommand,
} from '../src/index.js';

// Every command kind a log entry may hold, in the form the decoder gives back: optional flags only when set
// (`keepTtl`, MSETNX's `nx`), a comparison's '=' left implicit, a comparison without a number or value bare.

const bytes = fc.uint8Array({ maxLength: 12 });
const keys = fc.array(bytes, { maxLength: 4 });
const u64 = fc.maxSafeNat();
const i64 = fc.maxSafeInteger();
const u32 = fc.nat({ max: 0xffff_ffff });
const now = u64;
const txnId = fc.string({ minLength: 1, maxLength: 12 });
// Every member of ExecRead, or the typecheck fails: a read added to EXEC and not generated here would go untested.
const EXEC_READS = Object.keys({
  get: true,
  mget: true,
  exists: true,
  pttl: true,
  pexpiretime: true,
  keys: true,
  scan: true,
  dbsize: true,
  randomkey: true,
  collection: true,
} satisfies Record<ExecRead, true>) as ExecRead[];

const ordering = fc.option(fc.constantFrom('!=' as const, '<' as const, '>' as const), { nil: undefined });
const compare: fc.Arbitrary<KvCompare> = fc.oneof(
  fc.constantFrom('always' as const, 'absent' as const, 'present' as const).map((kind) => ({ kind })),
  fc
    .record({
      kind: fc.constantFrom('modRevision' as const, 'createRevision' as const, 'version' as const),
      value: u64,
    })
    .chain((c) => ordering.map((op): KvCompare => (op === undefined ? c : { ...c, op }))),
  bytes.chain((value) =>
    ordering.map((op): KvCompare => (op === undefined ? { kind: 'value', value } : { kind: 'value', value, op })),
  ),
);

/** An operation that may also stand inside an EXEC or a transaction (no EXEC, no transaction step). */
const plainOp: fc.Arbitrary<KvOp> = fc.oneof(
  fc
    .record({
      op: fc.constant('set' as const),
      key: bytes,
      value: bytes,
      condition: fc.constantFrom('always' as const, 'nx' as const, 'xx' as const),
      expiresAt: u64,
      returnOld: fc.boolean(),
      now,
    })
    .chain((c) => fc.boolean().map((keepTtl): KvOp => (keepTtl ? { ...c, keepTtl } : c))),
  fc.record({ op: fc.constant('del' as const), keys, now }),
  fc.record({
    op: fc.constant('incr' as const),
    key: bytes,
    delta: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    now,
  }),
  fc.tuple(fc.array(fc.tuple(bytes, bytes), { maxLength: 4 }), fc.boolean(), now).map(([pairs, nx, at]): KvOp => {
    const m = { op: 'mset' as const, keys: pairs.map((p) => p[0]), values: pairs.map((p) => p[1]), now: at };
    return nx ? { ...m, nx } : m;
  }),
  fc.record({ op: fc.constant('append' as const), key: bytes, value: bytes, now }),
  fc.record({ op: fc.constant('setrange' as const), key: bytes, offset: u64, value: bytes, now }),
  fc.record({ op: fc.constant('getdel' as const), key: bytes, now }),
  fc.record({
    op: fc.constant('getex' as const),
    key: bytes,
    expiry: fc.constantFrom('keep' as const, 'persist' as const, 'at' as const),
    deadline: i64,
    now,
  }),
  fc.record({ op: fc.constant('incrbyfloat' as const), key: bytes, increment: bytes, now }),
  fc.record({ op: fc.constant('rename' as const), key: bytes, dest: bytes, nx: fc.boolean(), now }),
  fc.record({ op: fc.constant('copy' as const), key: bytes, dest: bytes, replace: fc.boolean(), now }),
  fc.record({ op: fc.constant('flush' as const), now }),
  fc.record({
    op: fc.constant('expire' as const),
    key: bytes,
    deadline: i64,
    flag: fc.constantFrom(
      'always' as const,
      'nx' as const,
      'xx' as const,
      'gt' as const,
      'lt' as const,
      'xxlt' as const,
    ),
    now,
  }),
  fc.record({ op: fc.constant('persist' as const), key: bytes, now }),
  fc.record({ op: fc.constant('delExpired' as const), keys, now }),
  fc.record({ op: fc.constant('checksum' as const), now }),
  fc.record({
    op: fc.constant('cond' as const),
    key: bytes,
    compare,
    action: fc.oneof(
      fc.constant({ kind: 'del' as const }),
      fc.record({ kind: fc.constant('put' as const), value: bytes, expiresAt: u64 }),
    ),
    now,
  }),
  fc.constantFrom(...COLLECTION_WRITES).chain((name) =>
    fc.record({
      op: fc.constant('collection' as const),
      name: fc.constant(name),
      keys:
        name === 'lmpop'
          ? fc.array(bytes, { minLength: 1, maxLength: 3 })
          : fc.array(bytes, { minLength: name === 'lmove' ? 2 : 1, maxLength: name === 'lmove' ? 2 : 1 }),
      args: fc.array(bytes, { maxLength: 4 }),
      now,
    }),
  ),
);

/** What an EXEC or a transaction's branch holds: the operations above, and reads queued in the EXEC. */
const nestedOp: fc.Arbitrary<KvOp> = fc.oneof(
  plainOp,
  fc.record({
    op: fc.constant('read' as const),
    read: fc.constantFrom(...EXEC_READS),
    keys,
    args: fc.array(bytes, { maxLength: 3 }),
    now,
  }),
);

const topOp: fc.Arbitrary<KvOp> = fc.oneof(
  plainOp,
  fc.record({
    op: fc.constant('exec' as const),
    ops: fc.array(nestedOp, { maxLength: 4 }),
    watch: fc.array(fc.record({ key: bytes, revision: u64 }), { maxLength: 3 }),
    now,
  }),
  fc.record({
    op: fc.constant('txnPrepare' as const),
    txn: txnId,
    recordPartition: u32,
    participants: fc.array(u32, { maxLength: 4 }),
    compares: fc.array(fc.record({ key: bytes, compare }), { maxLength: 3 }),
    success: fc.array(nestedOp, { maxLength: 3 }),
    failure: fc.array(nestedOp, { maxLength: 3 }),
    timeoutMs: u64,
    now,
  }),
  fc.record({
    op: fc.constant('txnCommit' as const),
    txn: txnId,
    branch: fc.constantFrom('success' as const, 'failure' as const),
    now,
  }),
  fc.record({ op: fc.constant('txnAbort' as const), txn: txnId, coordinator: fc.boolean(), now }),
  fc.record({
    op: fc.constant('txnResolve' as const),
    txn: txnId,
    branch: fc.constantFrom('success' as const, 'failure' as const, 'abort' as const),
    now,
  }),
  fc.record({ op: fc.constant('txnForget' as const), txn: txnId, now }),
);

const session = fc.record({ clientId: fc.string({ minLength: 1, maxLength: 12 }), seq: u64, lowWater: u64 });
const command: fc.Arbitrary<KvCommand> = fc
  .tuple(topOp, fc.option(session, { nil: undefined }))
  .map(([op, s]): KvCommand => (s === undefined ? op : { ...op, session: s }));

describe('the KV command codec', () => {
  it('gives back every command of every kind as it was encoded', () => {
    fc.assert(
      fc.property(command, (cmd) => {
        expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
      }),
      { numRuns: 2000 },
    );
  });

  it('gives back an INCR delta anywhere in the 64-bit range', () => {
    // Before the second protons-runtime patch (pnpm-workspace.yaml), a negative delta of 2^53 or more whose low 32
    // bits are zero lost a carry: INCRBY k -9223372036854775808 applied +9223372032559808512 on every replica.
    const edges = [-(2n ** 63n), -(2n ** 63n) + 1n, -(2n ** 62n), -(2n ** 53n), -(2n ** 53n) - 1n, -(2n ** 32n)];
    for (const delta of [...edges, ...edges.map((d) => -d - 1n), 0n, -1n]) {
      const cmd: KvCommand = { op: 'incr', key: new Uint8Array([1]), delta, now: 1 };
      expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
    }
  });

  it('covers every kind of command the type allows', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(command, (cmd) => {
        seen.add(cmd.op);
        if (cmd.op === 'exec') for (const op of cmd.ops) seen.add(op.op);
      }),
      { numRuns: 3000 },
    );
    // The union's every member: a kind added to KvOp and not here is a kind this test does not round-trip.
    const all: Record<KvOp['op'], true> = {
      set: true,
      del: true,
      incr: true,
      mset: true,
      append: true,
      setrange: true,
      getdel: true,
      getex: true,
      incrbyfloat: true,
      rename: true,
      copy: true,
      flush: true,
      exec: true,
      read: true,
      expire: true,
      persist: true,
      delExpired: true,
      checksum: true,
      cond: true,
      collection: true,
      txnPrepare: true,
      txnCommit: true,
      txnAbort: true,
      txnResolve: true,
      txnForget: true,
    };
    expect([...seen].sort()).toEqual(Object.keys(all).sort());
  });

  it('refuses, with a CodecError naming the field, what it could not give back', () => {
    const set = {
      op: 'set' as const,
      key: new Uint8Array([1]),
      value: new Uint8Array([2]),
      condition: 'always' as const,
      expiresAt: 0,
      returnOld: false,
      now: 1000,
    };
    const refused: [unknown, RegExp][] = [
      // Names outside the codec's enums: written as a number no replica decodes.
      [{ ...set, condition: 'none' }, /unknown set condition "none"/],
      [{ op: 'expire', key: set.key, deadline: 5, flag: 'sometimes', now: 1 }, /unknown expire flag "sometimes"/],
      [{ op: 'getex', key: set.key, expiry: 'later', deadline: 5, now: 1 }, /unknown getex expiry "later"/],
      [
        { op: 'cond', key: set.key, compare: { kind: 'age', value: 1 }, action: { kind: 'del' }, now: 1 },
        /unknown comparison "age"/,
      ],
      [
        { op: 'cond', key: set.key, compare: { kind: 'version', value: 1, op: '<=' }, action: { kind: 'del' }, now: 1 },
        /unknown comparison operator "<="/,
      ],
      [{ op: 'txnCommit', txn: 't', branch: 'maybe', now: 1 }, /unknown commit branch "maybe"/],
      [{ op: 'txnCommit', txn: 't', branch: 'abort', now: 1 }, /unknown commit branch "abort"/],
      [{ op: 'txnResolve', txn: 't', branch: 'maybe', now: 1 }, /unknown branch "maybe"/],
      [
        { op: 'exec', ops: [{ op: 'read', read: 'hgetall', keys: [], args: [], now: 1 }], watch: [], now: 1 },
        /unknown read "hgetall"/,
      ],
      // Negative numbers in unsigned fields: decoded as 2^64 - |n| (an expiry of -5 as never, a version of -1 as 2^64).
      [{ ...set, expiresAt: -5 }, /expiresAt must be an integer from 0/],
      [{ ...set, now: -1 }, /now must be an integer from 0/],
      [{ ...set, session: { clientId: 'c', seq: -1, lowWater: 0 } }, /session\.seq must be an integer from 0/],
      [
        { op: 'cond', key: set.key, compare: { kind: 'version', value: -1, op: '<' }, action: { kind: 'del' }, now: 1 },
        /version comparison must be an integer from 0/,
      ],
      [{ op: 'setrange', key: set.key, offset: -1, value: set.value, now: 1 }, /offset must be an integer from 0/],
      [{ op: 'exec', ops: [], watch: [{ key: set.key, revision: -2 }], now: 1 }, /watched revision must be/],
      // Fractions and NaN: not integers at all.
      [{ ...set, expiresAt: 1.5 }, /expiresAt must be an integer/],
      [{ op: 'expire', key: set.key, deadline: Number.NaN, flag: 'always', now: 1 }, /deadline must be an integer/],
      [
        {
          op: 'txnPrepare',
          txn: 't',
          recordPartition: -1,
          participants: [],
          compares: [],
          success: [],
          failure: [],
          timeoutMs: 1,
          now: 1,
        },
        /recordPartition must be an integer from 0 to 2\^32 - 1/,
      ],
      [{ op: 'incr', key: set.key, delta: 2n ** 63n, now: 1 }, /delta must be a 64-bit integer/],
      // Shapes the decoder refuses: a read outside an EXEC, an MSET's keys and values unpaired, no client or
      // transaction id.
      [{ op: 'read', read: 'get', keys: [set.key], args: [], now: 1 }, /read command stands only inside an exec/],
      [{ op: 'mset', keys: [set.key, set.key], values: [set.value], now: 1 }, /mset command has 2 keys but 1 values/],
      [{ ...set, session: { clientId: '', seq: 1, lowWater: 0 } }, /session with an empty client id/],
      [{ op: 'txnForget', txn: '', now: 1 }, /transaction step has no transaction id/],
      // Nesting the codec has no place for.
      [
        { op: 'exec', ops: [{ op: 'txnAbort', txn: 't', coordinator: true, now: 1 }], watch: [], now: 1 },
        /exec command cannot hold a command of kind txnAbort/,
      ],
      [
        { op: 'exec', ops: [{ op: 'exec', ops: [], watch: [], now: 1 }], watch: [], now: 1 },
        /exec command cannot hold a command of kind exec/,
      ],
      [
        {
          op: 'txnPrepare',
          txn: 't',
          recordPartition: 0,
          participants: [],
          compares: [],
          success: [{ op: 'txnForget', txn: 'u', now: 1 }],
          failure: [],
          timeoutMs: 1,
          now: 1,
        },
        /txnPrepare command cannot hold a command of kind txnForget/,
      ],
    ];
    for (const [cmd, message] of refused) {
      let thrown: unknown;
      try {
        encodeCommand(cmd as KvCommand);
      } catch (err) {
        thrown = err;
      }
      expect(
        thrown,
        JSON.stringify(cmd, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      ).toBeInstanceOf(CodecError);
      expect((thrown as Error).message).toMatch(message);
    }
  });
});
