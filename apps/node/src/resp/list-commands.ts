import type { KvResponse } from '@cohort/kv';
import { NOT_INTEGER, SYNTAX, parseInteger, word } from './args.js';
import { collectionRead, collectionWrite } from './hash-commands.js';
import { type Handler, type Planned, type Session, onResult, toReply } from './plan.js';
import { type Reply, errorReply } from './reply.js';

/**
 * The list commands of Redis 7, blocking ones included. A list is one row
 * holding the whole list (see `collections.ts` in @cohort/kv): the front end
 * checks the arguments as Redis does, the state machine answers the rest.
 * A blocking command (BLPOP, BRPOP, BLMPOP, BLMOVE, BRPOPLPUSH) is its
 * non-blocking form run again each time one of its keys changes, until it
 * finds something or its timeout passes (see `Blocking`); inside MULTI it
 * does not block, as in Redis.
 */

const encoder = new TextEncoder();
const dec = (n: bigint): Uint8Array => encoder.encode(n.toString());
const POSITIVE = errorReply('ERR value is out of range, must be positive');

/** LPOP and RPOP with Redis 7's optional count. */
function pop(name: 'lpop' | 'rpop'): Handler {
  return (args, _api, session) => {
    if (args.length > 3) return errorReply(`ERR wrong number of arguments for '${name}' command`);
    if (args.length === 2) return collectionWrite(session, name, [args[1]!], []);
    const count = parseInteger(args[2]!);
    if (count === undefined || count < 0n) return POSITIVE;
    return collectionWrite(session, name, [args[1]!], [dec(count)]);
  };
}

/** Two integer arguments at `i` and `i + 1` as decimals, or Redis' error. */
function integers(args: Buffer[], ...at: number[]): Uint8Array[] | Reply {
  const out: Uint8Array[] = [];
  for (const i of at) {
    const n = parseInteger(args[i]!);
    if (n === undefined) return NOT_INTEGER;
    out.push(dec(n));
  }
  return out;
}

/** LPOS's options as Redis 7 parses them: RANK (not zero), COUNT and MAXLEN (not negative). */
const lpos: Handler = (args) => {
  let rank = 1n;
  let count = -1n;
  let maxlen = 0n;
  for (let i = 3; i < args.length; i++) {
    const opt = word(args[i]);
    const value = args[i + 1];
    if (opt === 'RANK' && value !== undefined) {
      i++;
      const n = parseInteger(value);
      if (n === undefined) return NOT_INTEGER;
      if (n === -(2n ** 63n)) {
        return errorReply('ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807');
      }
      if (n === 0n) {
        return errorReply(
          "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
        );
      }
      rank = n;
    } else if (opt === 'COUNT' && value !== undefined) {
      i++;
      const n = parseInteger(value);
      if (n === undefined || n < 0n) return errorReply("ERR COUNT can't be negative");
      count = n;
    } else if (opt === 'MAXLEN' && value !== undefined) {
      i++;
      const n = parseInteger(value);
      if (n === undefined || n < 0n) return errorReply("ERR MAXLEN can't be negative");
      maxlen = n;
    } else return SYNTAX;
  }
  return collectionRead('lpos', args[1]!, [args[2]!, dec(rank), dec(count), dec(maxlen)]);
};

/** LEFT or RIGHT, lower-cased; undefined otherwise. */
function side(arg: Buffer): Uint8Array | undefined {
  const w = word(arg);
  return w === 'LEFT' || w === 'RIGHT' ? encoder.encode(w.toLowerCase()) : undefined;
}

/** The null array a blocking command answers on timeout (and LMPOP when no list has elements). */
const NULL_ARRAY: Reply = { t: 'array', items: null };

const FLOAT = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$|^[+-]?inf(?:inity)?$/i;

/**
 * A blocking command's timeout in seconds, parsed as Redis 7 parses it, in
 * milliseconds (0: wait for ever), or Redis' error. Redis reads a value too
 * large for its millisecond counter as negative, and so does this.
 */
function timeoutOf(arg: Buffer): number | Reply {
  const text = arg.toString('latin1');
  if (!FLOAT.test(text)) return errorReply('ERR timeout is not a float or out of range');
  const ms = Math.ceil(Number(text.replace(/inf(inity)?$/i, 'Infinity')) * 1000);
  if (ms < 0 || !Number.isFinite(ms) || ms > Number.MAX_SAFE_INTEGER) return errorReply('ERR timeout is negative');
  return ms;
}

/** `planned` blocking on `keys` for `ms` (0: for ever) outside MULTI; as it is inside. */
function blocking(planned: Planned, keys: Buffer[], ms: number, session: Session): Planned {
  if ('reply' in planned || session.multi) return planned;
  return { ...planned, block: { keys, deadline: ms === 0 ? Number.POSITIVE_INFINITY : performance.now() + ms } };
}

/** LMPOP's answer `[key, [elements]]` as BLPOP answers it: `[key, element]`; nil as the null array. */
const popPair = (res: KvResponse): Reply =>
  res.type === 'nil'
    ? NULL_ARRAY
    : onResult((r) => {
        if (r.type !== 'list' || r.items === null) return toReply(r);
        const [key, popped] = r.items;
        const first = popped?.type === 'list' ? popped.items?.[0] : undefined;
        return { t: 'array', items: [toReply(key!), first ? toReply(first) : { t: 'bulk', v: null }] };
      })(res);

/** LMPOP's answer as it is, nil as the null array. */
const mpopReply = (res: KvResponse): Reply => (res.type === 'nil' ? NULL_ARRAY : toReply(res));

/** BLPOP and BRPOP: `key [key ...] timeout`. */
function blockingPop(end: 'left' | 'right'): Handler {
  return (args, _api, session) => {
    const ms = timeoutOf(args.at(-1)!);
    if (typeof ms !== 'number') return ms;
    const keys = args.slice(1, -1);
    const planned = collectionWrite(session, 'lmpop', keys, [encoder.encode(end), dec(1n)], popPair);
    return blocking(planned, keys, ms, session);
  };
}

/**
 * LMPOP and BLMPOP: `[timeout] numkeys key [key ...] LEFT|RIGHT [COUNT count]`,
 * checked in Redis 7's order (numkeys, the end, the options, then the timeout).
 */
function mpop(block: boolean): Handler {
  return (args, _api, session) => {
    const at = block ? 2 : 1;
    const n = parseInteger(args[at]!);
    if (n === undefined || n < 1n) return errorReply('ERR numkeys should be greater than 0');
    const where = at + Number(n) + 1;
    if (n > BigInt(args.length) || where >= args.length) return SYNTAX;
    const end = side(args[where]!);
    if (end === undefined) return SYNTAX;
    let count: bigint | undefined;
    for (let i = where + 1; i < args.length; i++) {
      if (word(args[i]) !== 'COUNT' || count !== undefined || i + 1 >= args.length) return SYNTAX;
      const c = parseInteger(args[++i]!);
      if (c === undefined || c < 1n) return errorReply('ERR count should be greater than 0');
      count = c;
    }
    const ms = block ? timeoutOf(args[1]!) : 0;
    if (typeof ms !== 'number') return ms;
    const keys = args.slice(at + 1, where);
    const planned = collectionWrite(session, 'lmpop', keys, [end, dec(count ?? 1n)], mpopReply);
    return block ? blocking(planned, keys, ms, session) : planned;
  };
}

/** BLMOVE `source destination LEFT|RIGHT LEFT|RIGHT timeout`, and BRPOPLPUSH `source destination timeout`. */
function blockingMove(sides?: [string, string]): Handler {
  return (args, _api, session) => {
    const from = sides ? encoder.encode(sides[0]) : side(args[3]!);
    const to = sides ? encoder.encode(sides[1]) : side(args[4]!);
    if (from === undefined || to === undefined) return SYNTAX;
    const ms = timeoutOf(args.at(-1)!);
    if (typeof ms !== 'number') return ms;
    // Redis: the null array on timeout; inside MULTI, where it does not block, the null bulk string of LMOVE.
    const inMulti = session.multi !== undefined;
    const planned = collectionWrite(session, 'lmove', [args[1]!, args[2]!], [from, to], (res) =>
      res.type === 'nil' && !inMulti ? NULL_ARRAY : toReply(res),
    );
    return blocking(planned, [args[1]!], ms, session);
  };
}

/** The list commands: name, Redis arity (n words exactly, or at least -n), handler. */
export const LIST_COMMANDS: Record<string, { arity: number; run: Handler }> = {
  lpush: { arity: -3, run: (args, _api, session) => collectionWrite(session, 'lpush', [args[1]!], args.slice(2)) },
  rpush: { arity: -3, run: (args, _api, session) => collectionWrite(session, 'rpush', [args[1]!], args.slice(2)) },
  lpushx: { arity: -3, run: (args, _api, session) => collectionWrite(session, 'lpushx', [args[1]!], args.slice(2)) },
  rpushx: { arity: -3, run: (args, _api, session) => collectionWrite(session, 'rpushx', [args[1]!], args.slice(2)) },
  lpop: { arity: -2, run: pop('lpop') },
  rpop: { arity: -2, run: pop('rpop') },
  llen: { arity: 2, run: (args) => collectionRead('llen', args[1]!, []) },
  lindex: {
    arity: 3,
    run: (args) => {
      const i = integers(args, 2);
      return 't' in i ? i : collectionRead('lindex', args[1]!, i);
    },
  },
  lrange: {
    arity: 4,
    run: (args) => {
      const r = integers(args, 2, 3);
      return 't' in r ? r : collectionRead('lrange', args[1]!, r);
    },
  },
  lset: {
    arity: 4,
    run: (args, _api, session) => {
      const i = integers(args, 2);
      return 't' in i ? i : collectionWrite(session, 'lset', [args[1]!], [...i, args[3]!]);
    },
  },
  lrem: {
    arity: 4,
    run: (args, _api, session) => {
      const n = integers(args, 2);
      return 't' in n ? n : collectionWrite(session, 'lrem', [args[1]!], [...n, args[3]!]);
    },
  },
  ltrim: {
    arity: 4,
    run: (args, _api, session) => {
      const r = integers(args, 2, 3);
      return 't' in r ? r : collectionWrite(session, 'ltrim', [args[1]!], r);
    },
  },
  linsert: {
    arity: 5,
    run: (args, _api, session) => {
      const where = word(args[2]);
      if (where !== 'BEFORE' && where !== 'AFTER') return SYNTAX;
      return collectionWrite(session, 'linsert', [args[1]!], [encoder.encode(where.toLowerCase()), args[3]!, args[4]!]);
    },
  },
  lpos: { arity: -3, run: lpos },
  lmove: {
    arity: 5,
    run: (args, _api, session) => {
      const from = side(args[3]!);
      const to = side(args[4]!);
      if (from === undefined || to === undefined) return SYNTAX;
      return collectionWrite(session, 'lmove', [args[1]!, args[2]!], [from, to]);
    },
  },
  lmpop: { arity: -4, run: mpop(false) },
  blpop: { arity: -3, run: blockingPop('left') },
  brpop: { arity: -3, run: blockingPop('right') },
  blmpop: { arity: -5, run: mpop(true) },
  blmove: { arity: 6, run: blockingMove() },
  brpoplpush: { arity: 4, run: blockingMove(['right', 'left']) },
  rpoplpush: {
    arity: 3,
    run: (args, _api, session) =>
      collectionWrite(session, 'lmove', [args[1]!, args[2]!], [encoder.encode('right'), encoder.encode('left')]),
  },
};
