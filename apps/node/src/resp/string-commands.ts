import { type Expiry, type KvClientWrite, MAX_VALUE_BYTES } from '@cohort/kv';
import { NOT_INTEGER, SYNTAX, expireOption, parseInteger, word } from './args.js';
import { type Handler, type Planned, type Session, onResult, read, toReply, write } from './plan.js';
import { type Reply, errorReply } from './reply.js';

const EXPIRE_OPTIONS = ['EX', 'PX', 'EXAT', 'PXAT'];

/**
 * SET's and GETEX's options as Redis 7 parses them
 * (`parseExtendedStringArgumentsOrReply`): every option is checked before
 * the time, an expiry option excludes the others and KEEPTTL (PERSIST for
 * GETEX) but not itself (the last one wins), NX and XX exclude each other.
 */
function parseStringOptions(
  args: Buffer[],
  from: number,
  command: 'set' | 'getex',
): { nx: boolean; xx: boolean; get: boolean; keep: boolean; persist: boolean; expiry: Expiry } | Reply {
  let nx = false;
  let xx = false;
  let get = false;
  let keep = false;
  let persist = false;
  let unit = '';
  let time: Buffer | undefined;
  for (let i = from; i < args.length; i++) {
    const opt = word(args[i]);
    const next = args[i + 1];
    const isSet = command === 'set';
    if (opt === 'NX' && !xx && isSet) nx = true;
    else if (opt === 'XX' && !nx && isSet) xx = true;
    else if (opt === 'GET' && isSet) get = true;
    else if (opt === 'KEEPTTL' && !persist && unit === '' && isSet) keep = true;
    else if (opt === 'PERSIST' && !isSet && !keep && unit === '') persist = true;
    else if (EXPIRE_OPTIONS.includes(opt) && !keep && !persist && (unit === '' || unit === opt) && next) {
      unit = opt;
      time = next;
      i++;
    } else return SYNTAX;
  }
  let expiry: Expiry = { kind: 'none' };
  if (time !== undefined) {
    const e = expireOption(unit, time, command);
    if ('t' in e) return e;
    expiry = e;
  }
  return { nx, xx, get, keep, persist, expiry };
}

const set: Handler = (args, _api, session) => {
  const o = parseStringOptions(args, 3, 'set');
  if ('t' in o) return o;
  return write(session, {
    op: 'set',
    key: args[1]!,
    value: args[2]!,
    condition: o.nx ? 'nx' : o.xx ? 'xx' : 'always',
    expiry: o.keep ? { kind: 'keep' } : o.expiry,
    returnOld: o.get,
  });
};

const getex: Handler = (args, _api, session) => {
  const o = parseStringOptions(args, 2, 'getex');
  if ('t' in o) return o;
  const expiry = o.persist
    ? ({ kind: 'persist' } as const)
    : o.expiry.kind === 'none'
      ? ({ kind: 'keep' } as const)
      : o.expiry;
  return write(session, { op: 'getex', key: args[1]!, expiry });
};

/** SETEX and PSETEX: `SET key value EX|PX time` with their own error texts. */
function setex(unit: 'EX' | 'PX', command: string): Handler {
  return (args, _api, session) => {
    const e = expireOption(unit, args[2]!, command);
    if ('t' in e) return e;
    return write(session, {
      op: 'set',
      key: args[1]!,
      value: args[3]!,
      condition: 'always',
      expiry: e,
      returnOld: false,
    });
  };
}

/** INCR, DECR, INCRBY, DECRBY: `sign` applies to the argument, `fixed` replaces it. */
function incrBy(sign: bigint, fixed?: bigint): Handler {
  return (args, _api, session) => {
    const delta = fixed ?? parseInteger(args[2]!);
    if (delta === undefined) return NOT_INTEGER;
    // Redis: negating the smallest 64-bit integer overflows.
    if (sign < 0n && delta === -(2n ** 63n)) return errorReply('ERR decrement would overflow');
    return write(session, { op: 'incr', key: args[1]!, delta: sign * delta });
  };
}

/** MSET and MSETNX: key value pairs. */
function mset(nx: boolean): Handler {
  return (args, _api, session) => {
    if (args.length % 2 === 0)
      return errorReply(`ERR wrong number of arguments for '${nx ? 'msetnx' : 'mset'}' command`);
    const keys = args.filter((_, i) => i % 2 === 1);
    const values = args.filter((_, i) => i > 0 && i % 2 === 0);
    const w: KvClientWrite = nx ? { op: 'mset', keys, values, nx: true } : { op: 'mset', keys, values };
    return write(session, w);
  };
}

/** GETRANGE of `value` as Redis 7 computes it (negative indexes from the end, clamped). */
function range(value: Uint8Array, startArg: bigint, endArg: bigint): Uint8Array {
  const len = BigInt(value.length);
  let start = startArg;
  let end = endArg;
  if (start < 0n && end < 0n && start > end) return new Uint8Array();
  if (start < 0n) start += len;
  if (end < 0n) end += len;
  if (start < 0n) start = 0n;
  if (end < 0n) end = 0n;
  if (end >= len) end = len - 1n;
  if (start > end || len === 0n) return new Uint8Array();
  return value.subarray(Number(start), Number(end) + 1);
}

const EMPTY: Reply = { t: 'bulk', v: new Uint8Array() };

const getrange: Handler = (args) => {
  const start = parseInteger(args[2]!);
  const end = parseInteger(args[3]!);
  if (start === undefined || end === undefined) return NOT_INTEGER;
  return read(
    'get',
    [args[1]!],
    onResult((r) =>
      r.type === 'bulk' ? { t: 'bulk', v: range(r.value, start, end) } : r.type === 'error' ? toReply(r) : EMPTY,
    ),
  );
};

const setrange: Handler = (args, _api, session) => {
  const offset = parseInteger(args[2]!);
  if (offset === undefined) return NOT_INTEGER;
  if (offset < 0n) return errorReply('ERR offset is out of range');
  // Past the size limit either way: the state machine answers Redis' error (or 0 for an empty value).
  const clamped = offset > BigInt(MAX_VALUE_BYTES) ? MAX_VALUE_BYTES + 1 : Number(offset);
  return write(session, { op: 'setrange', key: args[1]!, offset: clamped, value: args[3]! });
};

function boolReply(planned: Planned): Planned {
  if (!('request' in planned)) return planned;
  return {
    ...planned,
    answer: onResult((r) =>
      r.type === 'ok' ? { t: 'int', n: 1 } : r.type === 'nil' ? { t: 'int', n: 0 } : planned.answer(r),
    ),
  };
}

/** The string commands: name, Redis arity (n words exactly, or at least -n), handler. */
export const STRING_COMMANDS: Record<string, { arity: number; run: Handler }> = {
  get: { arity: 2, run: (args) => read('get', [args[1]!]) },
  set: { arity: -3, run: set },
  setnx: {
    arity: 3,
    run: (args, _api, session: Session) =>
      boolReply(
        write(session, {
          op: 'set',
          key: args[1]!,
          value: args[2]!,
          condition: 'nx',
          expiry: { kind: 'none' },
          returnOld: false,
        }),
      ),
  },
  setex: { arity: 4, run: setex('EX', 'setex') },
  psetex: { arity: 4, run: setex('PX', 'psetex') },
  getset: {
    arity: 3,
    run: (args, _api, session) =>
      write(session, {
        op: 'set',
        key: args[1]!,
        value: args[2]!,
        condition: 'always',
        expiry: { kind: 'none' },
        returnOld: true,
      }),
  },
  getdel: { arity: 2, run: (args, _api, session) => write(session, { op: 'getdel', key: args[1]! }) },
  getex: { arity: -2, run: getex },
  mget: { arity: -2, run: (args) => read('mget', args.slice(1)) },
  mset: { arity: -3, run: mset(false) },
  msetnx: { arity: -3, run: mset(true) },
  append: { arity: 3, run: (args, _api, session) => write(session, { op: 'append', key: args[1]!, value: args[2]! }) },
  strlen: {
    arity: 2,
    run: (args) =>
      read(
        'get',
        [args[1]!],
        onResult((r) => (r.type === 'error' ? toReply(r) : { t: 'int', n: r.type === 'bulk' ? r.value.length : 0 })),
      ),
  },
  getrange: { arity: 4, run: getrange },
  // SUBSTR is GETRANGE's old name, still served by Redis 7.
  substr: { arity: 4, run: getrange },
  setrange: { arity: 4, run: setrange },
  incr: { arity: 2, run: incrBy(1n, 1n) },
  decr: { arity: 2, run: incrBy(-1n, 1n) },
  incrby: { arity: 3, run: incrBy(1n) },
  decrby: { arity: 3, run: incrBy(-1n) },
  incrbyfloat: {
    arity: 3,
    run: (args, _api, session) => write(session, { op: 'incrbyfloat', key: args[1]!, increment: args[2]! }),
  },
};
