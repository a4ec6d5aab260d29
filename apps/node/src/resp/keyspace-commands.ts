import type { Deadline, ExpireFlag } from '@cohort/kv';
import { NOT_INTEGER, SYNTAX, invalidExpire, parseInteger, word } from './args.js';
import { type Handler, onResult, read, toReply, write } from './plan.js';
import { NIL, errorReply } from './reply.js';

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/**
 * EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT with Redis 7's NX, XX, GT and LT
 * (`expireGenericCommand`): options are checked before the time; `unit` is
 * the milliseconds of one unit, `absolute` whether the time is a Unix time.
 */
function expire(name: string, unit: 1n | 1000n, absolute: boolean): Handler {
  return (args, _api, session) => {
    const seen = new Set<string>();
    for (const arg of args.slice(3)) {
      const opt = word(arg);
      if (!['NX', 'XX', 'GT', 'LT'].includes(opt))
        return errorReply(`ERR Unsupported option ${arg.toString('latin1')}`);
      seen.add(opt);
    }
    if (seen.has('NX') && seen.size > 1) {
      return errorReply('ERR NX and XX, GT or LT options at the same time are not compatible');
    }
    if (seen.has('GT') && seen.has('LT'))
      return errorReply('ERR GT and LT options at the same time are not compatible');
    // GT implies XX (no expiry counts as an infinite deadline, never exceeded).
    const flag: ExpireFlag = seen.has('GT')
      ? 'gt'
      : seen.has('LT')
        ? seen.has('XX')
          ? 'xxlt'
          : 'lt'
        : seen.has('XX')
          ? 'xx'
          : seen.has('NX')
            ? 'nx'
            : 'always';
    const n = parseInteger(args[2]!);
    if (n === undefined) return NOT_INTEGER;
    if (unit === 1000n && (n > INT64_MAX / 1000n || n < INT64_MIN / 1000n)) return invalidExpire(name);
    const ms = n * unit;
    // Redis refuses a deadline past the largest 64-bit integer; Cohort's bound is the largest exact JavaScript number.
    const base = absolute ? 0n : BigInt(Date.now());
    if (ms + base > BigInt(Number.MAX_SAFE_INTEGER)) return invalidExpire(name);
    // Any deadline before the epoch is in the past: it deletes the key, and compares below every real one.
    const deadline: Deadline =
      ms + base < 0n ? { kind: 'at', ms: -1 } : { kind: absolute ? 'at' : 'in', ms: Number(ms) };
    return write(session, { op: 'expire', key: args[1]!, deadline, flag, command: name });
  };
}

/** TTL, PTTL, EXPIRETIME, PEXPIRETIME: seconds are rounded as Redis does, `(ms + 500) / 1000`. */
function ttl(op: 'pttl' | 'pexpiretime', seconds: boolean): Handler {
  return (args) =>
    read(
      op,
      [args[1]!],
      onResult((r) => {
        if (r.type !== 'int' || !seconds || r.value < 0n) return toReply(r);
        return { t: 'int', n: (r.value + 500n) / 1000n };
      }),
    );
}

/** Redis' `strtoul` for SCAN cursors: digits (a sign allowed, `-n` wrapping), no leading space, no overflow. */
export function parseCursor(arg: Buffer): bigint | undefined {
  // An empty cursor is 0 to strtoul.
  const m = /^([+-]?)([0-9]*)$/.exec(arg.toString('latin1'));
  if (!m) return undefined;
  const n = BigInt(m[2] || '0');
  if (n > 2n ** 64n - 1n) return undefined;
  return m[1] === '-' && n !== 0n ? 2n ** 64n - n : n;
}

const scan: Handler = (args, _api, session) => {
  const cursor = parseCursor(args[1]!);
  if (cursor === undefined) return errorReply('ERR invalid cursor');
  let count = 10n;
  let pattern: Buffer | undefined;
  let type: Buffer | undefined;
  for (let i = 2; i < args.length; i += 2) {
    const opt = word(args[i]);
    const value = args[i + 1];
    if (value === undefined) return SYNTAX;
    if (opt === 'COUNT') {
      const n = parseInteger(value);
      if (n === undefined) return NOT_INTEGER;
      if (n < 1n) return SYNTAX;
      count = n;
    } else if (opt === 'MATCH') pattern = value;
    else if (opt === 'TYPE') type = value;
    else return SYNTAX;
  }
  let after: Uint8Array = new Uint8Array();
  if (cursor !== 0n) {
    const resume = session.server.cursors.resume(cursor);
    if (resume === undefined) return errorReply('ERR invalid cursor');
    after = Buffer.concat([Buffer.from([1]), resume]);
  }
  // A pattern of `*` matches everything (Redis skips matching then too).
  const match = pattern === undefined || (pattern.length === 1 && pattern[0] === 0x2a) ? new Uint8Array() : pattern;
  const work = count > 100_000n ? 100_000 : Number(count);
  return read(
    'scan',
    [],
    (res) => {
      if (res.type !== 'array') return toReply(res);
      const [next, ...keys] = res.values;
      const id = next === null || next === undefined ? 0n : session.server.cursors.issue(next);
      return {
        t: 'array',
        items: [
          { t: 'bulk', v: id.toString() },
          { t: 'array', items: keys.map((k) => ({ t: 'bulk', v: k })) },
        ],
      };
    },
    [after, match, new TextEncoder().encode(String(work)), type ?? new Uint8Array()],
  );
};

const flushdb: Handler = (args, _api, session) => {
  if (args.length > 2 || (args.length === 2 && !['ASYNC', 'SYNC'].includes(word(args[1])))) return SYNTAX;
  return write(session, { op: 'flush' });
};

const copy: Handler = (args, _api, session) => {
  let replace = false;
  for (let i = 3; i < args.length; i++) {
    const opt = word(args[i]);
    if (opt === 'REPLACE') replace = true;
    else if (opt === 'DB' && i + 1 < args.length) {
      const db = parseInteger(args[++i]!);
      if (db === undefined || db > 2147483647n || db < -2147483648n) return NOT_INTEGER;
      // One database per cluster, as in Redis Cluster.
      if (db !== 0n) return errorReply('ERR DB index is out of range');
    } else return SYNTAX;
  }
  return write(session, { op: 'copy', key: args[1]!, dest: args[2]!, replace });
};

/** The keyspace commands: name, Redis arity (n words exactly, or at least -n), handler. */
export const KEYSPACE_COMMANDS: Record<string, { arity: number; run: Handler }> = {
  del: { arity: -2, run: (args, _api, session) => write(session, { op: 'del', keys: args.slice(1) }) },
  unlink: { arity: -2, run: (args, _api, session) => write(session, { op: 'del', keys: args.slice(1) }) },
  exists: { arity: -2, run: (args) => read('exists', args.slice(1)) },
  type: {
    arity: 2,
    run: (args) =>
      read(
        'collection',
        [args[1]!],
        onResult((r) => (r.type === 'bulk' ? { t: 'simple', s: Buffer.from(r.value).toString('latin1') } : toReply(r))),
        [new TextEncoder().encode('type')],
      ),
  },
  rename: {
    arity: 3,
    run: (args, _api, session) => write(session, { op: 'rename', key: args[1]!, dest: args[2]!, nx: false }),
  },
  renamenx: {
    arity: 3,
    run: (args, _api, session) => write(session, { op: 'rename', key: args[1]!, dest: args[2]!, nx: true }),
  },
  copy: { arity: -3, run: copy },
  expire: { arity: -3, run: expire('expire', 1000n, false) },
  pexpire: { arity: -3, run: expire('pexpire', 1n, false) },
  expireat: { arity: -3, run: expire('expireat', 1000n, true) },
  pexpireat: { arity: -3, run: expire('pexpireat', 1n, true) },
  persist: { arity: 2, run: (args, _api, session) => write(session, { op: 'persist', key: args[1]! }) },
  ttl: { arity: 2, run: ttl('pttl', true) },
  pttl: { arity: 2, run: ttl('pttl', false) },
  expiretime: { arity: 2, run: ttl('pexpiretime', true) },
  pexpiretime: { arity: 2, run: ttl('pexpiretime', false) },
  keys: { arity: 2, run: (args) => read('keys', [], undefined, [args[1]!]) },
  scan: { arity: -2, run: scan },
  dbsize: { arity: 1, run: () => read('dbsize', []) },
  randomkey: { arity: 1, run: () => read('randomkey', [], (r) => (r.type === 'nil' ? NIL : toReply(r))) },
  flushdb: { arity: -1, run: flushdb },
};
