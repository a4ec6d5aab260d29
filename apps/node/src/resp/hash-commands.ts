import { type KvResponse, globMatch } from '@cohort/kv';
import { NOT_INTEGER, SYNTAX, parseInteger, word } from './args.js';
import { parseCursor } from './keyspace-commands.js';
import { type Handler, type Planned, type Session, onResult, read, toReply, write } from './plan.js';
import { OK, type Reply, errorReply } from './reply.js';

/**
 * The hash commands of Redis 7. A hash is one row holding the whole hash
 * (see `collections.ts` in @cohort/kv): the front end checks the arguments
 * as Redis does, in Redis' order, and the state machine answers the rest
 * (WRONGTYPE, missing keys, overflow).
 */

const encoder = new TextEncoder();

/** A hash write, in the connection's session. */
export function collectionWrite(
  session: Session,
  name: string,
  keys: Buffer[],
  args: Uint8Array[],
  answer?: (res: KvResponse) => Reply,
): Planned {
  return write(session, { op: 'collection', name: name as never, keys, args }, answer);
}

/** A hash or list read of `key` (or TYPE). */
export function collectionRead(
  name: string,
  key: Buffer,
  args: Uint8Array[],
  answer?: (res: KvResponse) => Reply,
): Planned {
  return read('collection', [key], answer, [encoder.encode(name), ...args]);
}

/** A flat field/value list as the reply HGETALL gives: a map in RESP3, an array in RESP2. */
function pairs(session: Session): (res: KvResponse) => Reply {
  return onResult((r) => {
    if (r.type !== 'list' || r.items === null || session.proto !== 3) return toReply(r);
    const entries: [Reply, Reply][] = [];
    for (let i = 0; i + 1 < r.items.length; i += 2) entries.push([toReply(r.items[i]!), toReply(r.items[i + 1]!)]);
    return { t: 'map', entries };
  });
}

/** HSET and HMSET: field value pairs; HSET answers the fields added, HMSET OK. */
function hset(name: 'hset' | 'hmset'): Handler {
  return (args, _api, session) => {
    if (args.length % 2 !== 0) return errorReply(`ERR wrong number of arguments for '${name}' command`);
    return collectionWrite(
      session,
      'hset',
      [args[1]!],
      args.slice(2),
      name === 'hmset' ? onResult((r) => (r.type === 'int' ? OK : toReply(r))) : undefined,
    );
  };
}

/** HSCAN: a hash is answered whole in one page (cursor 0), as Redis does for a small hash. */
const hscan: Handler = (args) => {
  if (parseCursor(args[2]!) === undefined) return errorReply('ERR invalid cursor');
  // Redis checks the options after the key: an absent key answers an empty page, a wrong type WRONGTYPE first.
  let optionError: Reply | undefined;
  let pattern: Buffer | undefined;
  for (let i = 3; i < args.length && optionError === undefined; i += 2) {
    const opt = word(args[i]);
    const value = args[i + 1];
    if (value === undefined) optionError = SYNTAX;
    else if (opt === 'COUNT') {
      const n = parseInteger(value);
      if (n === undefined) optionError = NOT_INTEGER;
      else if (n < 1n) optionError = SYNTAX;
    } else if (opt === 'MATCH') pattern = value;
    else optionError = SYNTAX;
  }
  const all = pattern === undefined || (pattern.length === 1 && pattern[0] === 0x2a);
  return collectionRead(
    'hgetall',
    args[1]!,
    [],
    onResult((r) => {
      if (r.type !== 'list' || r.items === null) return toReply(r);
      const page = (items: Reply[]): Reply => ({
        t: 'array',
        items: [
          { t: 'bulk', v: '0' },
          { t: 'array', items },
        ],
      });
      if (r.items.length === 0) return page([]);
      if (optionError) return optionError;
      const out: Reply[] = [];
      for (let i = 0; i + 1 < r.items.length; i += 2) {
        const f = r.items[i]!;
        const v = r.items[i + 1]!;
        if (f.type !== 'bulk' || v.type !== 'bulk') continue;
        if (all || globMatch(pattern!, f.value)) out.push({ t: 'bulk', v: f.value }, { t: 'bulk', v: v.value });
      }
      return page(out);
    }),
  );
};

const LONG_MAX = 2n ** 63n - 1n;

/**
 * HRANDFIELD key [count [WITHVALUES]] as Redis 7 answers it: a positive
 * count distinct fields (the whole hash, in order, when the count reaches
 * its size), a negative one that many with repetitions. Random picks use
 * this node's `Math.random` (a read: nothing replicated depends on them).
 */
const hrandfield: Handler = (args, _api, session) => {
  if (args.length === 2) {
    return collectionRead(
      'hgetall',
      args[1]!,
      [],
      onResult((r) => {
        if (r.type !== 'list' || r.items === null) return toReply(r);
        if (r.items.length === 0) return { t: 'bulk', v: null };
        return toReply(r.items[2 * Math.floor((Math.random() * r.items.length) / 2)]!);
      }),
    );
  }
  const count = parseInteger(args[2]!);
  if (count === undefined) return NOT_INTEGER;
  if (count < -LONG_MAX) {
    return errorReply('ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807');
  }
  if (args.length > 4 || (args.length === 4 && word(args[3]) !== 'WITHVALUES')) return SYNTAX;
  const withValues = args.length === 4;
  if (withValues && (count < -LONG_MAX / 2n || count > LONG_MAX / 2n)) return errorReply('ERR value is out of range');
  return collectionRead(
    'hgetall',
    args[1]!,
    [],
    onResult((r) => {
      if (r.type !== 'list' || r.items === null) return toReply(r);
      const size = r.items.length / 2;
      const want = count < 0n ? -count : count;
      if (size === 0 || want === 0n) return { t: 'array', items: [] };
      let picks: number[];
      if (count < 0n || want === 1n) {
        // With repetitions; a count this large would not fit in a reply anyway.
        if (want > 1_048_576n) return errorReply('ERR the count is larger than Cohort answers (1048576)');
        picks = Array.from({ length: Number(want) }, () => Math.floor(Math.random() * size));
      } else if (want >= BigInt(size)) {
        picks = Array.from({ length: size }, (_, i) => i);
      } else {
        const all = Array.from({ length: size }, (_, i) => i);
        for (let i = all.length - 1; i > 0; i--) {
          const j = Math.floor(Math.random() * (i + 1));
          [all[i], all[j]] = [all[j]!, all[i]!];
        }
        picks = all.slice(0, Number(want));
      }
      const field = (i: number): Reply => toReply(r.items![2 * i]!);
      const value = (i: number): Reply => toReply(r.items![2 * i + 1]!);
      if (!withValues) return { t: 'array', items: picks.map(field) };
      if (session.proto === 3)
        return { t: 'array', items: picks.map((i) => ({ t: 'array', items: [field(i), value(i)] })) };
      return { t: 'array', items: picks.flatMap((i) => [field(i), value(i)]) };
    }),
  );
};

/** The hash commands: name, Redis arity (n words exactly, or at least -n), handler. */
export const HASH_COMMANDS: Record<string, { arity: number; run: Handler }> = {
  hset: { arity: -4, run: hset('hset') },
  hmset: { arity: -4, run: hset('hmset') },
  hsetnx: { arity: 4, run: (args, _api, session) => collectionWrite(session, 'hsetnx', [args[1]!], args.slice(2)) },
  hget: { arity: 3, run: (args) => collectionRead('hget', args[1]!, [args[2]!]) },
  hmget: { arity: -3, run: (args) => collectionRead('hmget', args[1]!, args.slice(2)) },
  hdel: { arity: -3, run: (args, _api, session) => collectionWrite(session, 'hdel', [args[1]!], args.slice(2)) },
  hgetall: { arity: 2, run: (args, _api, session) => collectionRead('hgetall', args[1]!, [], pairs(session)) },
  hkeys: { arity: 2, run: (args) => collectionRead('hkeys', args[1]!, []) },
  hvals: { arity: 2, run: (args) => collectionRead('hvals', args[1]!, []) },
  hlen: { arity: 2, run: (args) => collectionRead('hlen', args[1]!, []) },
  hexists: { arity: 3, run: (args) => collectionRead('hexists', args[1]!, [args[2]!]) },
  hstrlen: { arity: 3, run: (args) => collectionRead('hstrlen', args[1]!, [args[2]!]) },
  hincrby: {
    arity: 4,
    run: (args, _api, session) => {
      const delta = parseInteger(args[3]!);
      if (delta === undefined) return NOT_INTEGER;
      return collectionWrite(session, 'hincrby', [args[1]!], [args[2]!, encoder.encode(delta.toString())]);
    },
  },
  hincrbyfloat: {
    arity: 4,
    run: (args, _api, session) => collectionWrite(session, 'hincrbyfloat', [args[1]!], [args[2]!, args[3]!]),
  },
  hscan: { arity: -3, run: hscan },
  hrandfield: { arity: -2, run: hrandfield },
};
