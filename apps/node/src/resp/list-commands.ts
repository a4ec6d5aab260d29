import { NOT_INTEGER, SYNTAX, parseInteger, word } from './args.js';
import { collectionRead, collectionWrite } from './hash-commands.js';
import type { Handler } from './plan.js';
import { type Reply, errorReply } from './reply.js';

/**
 * The list commands of Redis 7 (blocking ones excepted: BLPOP, BRPOP,
 * BLMOVE, BRPOPLPUSH and BLMPOP are unknown commands here). A list is one
 * row holding the whole list (see `collections.ts` in @cohort/kv): the front
 * end checks the arguments as Redis does, the state machine answers the rest.
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
  rpoplpush: {
    arity: 3,
    run: (args, _api, session) =>
      collectionWrite(session, 'lmove', [args[1]!, args[2]!], [encoder.encode('right'), encoder.encode('left')]),
  },
};
