import type { CollectionWrite } from './collections.js';
import type { ExpireFlag, KvCommand, KvCompare, KvOp, SetCondition, WatchedKey } from './command.js';
import type { ExecRead } from './reads.js';
import type { KvReadOp } from './request.js';

/**
 * A client's session for exactly-once writes: one per RESP connection, one
 * per HTTP `Idempotency-Key`. `seq` grows by one per write; `lowWater` is the
 * highest seq whose reply the client already received, in order, so the
 * replicas may forget the stored replies up to it.
 */
export interface ClientSession {
  clientId: string;
  seq: number;
  lowWater: number;
}

/** A key's time to live as a client states it: none, relative (`in` ms from now) or an absolute deadline (`at`, Unix ms). */
export type Expiry = { kind: 'none' } | { kind: 'in'; ms: number } | { kind: 'at'; ms: number };

/** A new deadline (EXPIRE and its kin): relative (`in` ms, negative allowed) or absolute (`at`, Unix ms). */
export type Deadline = { kind: 'in'; ms: number } | { kind: 'at'; ms: number };

/**
 * A write as a front end parses it: no clock reading, relative times kept
 * relative. {@link KvService} turns it into a {@link KvCommand}, stamping the
 * time and the deadline.
 */
export type KvClientWrite =
  | {
      op: 'set';
      key: Uint8Array;
      value: Uint8Array;
      condition: SetCondition;
      /** The new expiry, or `keep` the key's current one (SET ... KEEPTTL). */
      expiry: Expiry | { kind: 'keep' };
      /** Return the previous value (SET ... GET). */
      returnOld: boolean;
    }
  | { op: 'del'; keys: Uint8Array[] }
  | { op: 'incr'; key: Uint8Array; delta: bigint }
  | { op: 'mset'; keys: Uint8Array[]; values: Uint8Array[]; nx?: boolean }
  | { op: 'append'; key: Uint8Array; value: Uint8Array }
  | { op: 'setrange'; key: Uint8Array; offset: number; value: Uint8Array }
  | { op: 'getdel'; key: Uint8Array }
  /** GETEX: `keep` the expiry, `persist` (drop it), or a new deadline; `command` names it in errors. */
  | { op: 'getex'; key: Uint8Array; expiry: Expiry | { kind: 'keep' } | { kind: 'persist' } }
  | { op: 'incrbyfloat'; key: Uint8Array; increment: Uint8Array }
  | { op: 'rename'; key: Uint8Array; dest: Uint8Array; nx: boolean }
  | { op: 'copy'; key: Uint8Array; dest: Uint8Array; replace: boolean }
  | { op: 'flush' }
  /** MULTI/EXEC: the queued writes, applied in one log entry, unless a watched key changed since its revision was read. */
  | { op: 'exec'; writes: KvClientWrite[]; watch: WatchedKey[] }
  /** A read queued in an EXEC (only there). */
  | { op: 'read'; read: ExecRead; keys: Uint8Array[]; args?: Uint8Array[] }
  /** EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: `command` names it in errors. A deadline already past deletes the key. */
  | { op: 'expire'; key: Uint8Array; deadline: Deadline; flag: ExpireFlag; command: string }
  | { op: 'persist'; key: Uint8Array }
  /** The expiry sweeper's delete: each key only if still expired when it applies. */
  | { op: 'delExpired'; keys: Uint8Array[] }
  /** Records a digest of the rows at this write's log index, for the consistency checker. */
  | { op: 'checksum' }
  /** Puts or deletes one key if `compare` holds when the write applies (compare-and-swap; `always` for a plain write). */
  | {
      op: 'cond';
      key: Uint8Array;
      compare: KvCompare;
      action: { kind: 'put'; value: Uint8Array; expiry: Expiry } | { kind: 'del' };
    }
  /** A hash or list write: `keys` its key (LMOVE: source, destination), `args` checked as `collections.ts` expects. */
  | { op: 'collection'; name: CollectionWrite; keys: Uint8Array[]; args: Uint8Array[] };

/**
 * Which partitions a keyspace-wide command (SCAN, KEYS, DBSIZE, RANDOMKEY,
 * FLUSHDB) covers when the key space is partitioned: the whole cluster
 * (absent: what a plain client sees), or `node`, the partitions the serving
 * node leads, as a Redis Cluster node answers for its own slots (what a
 * cluster-aware client sees).
 */
export type KeyspaceScope = 'node';

/** A request as the front ends hand it to {@link KvService.execute}. */
export type KvClientRequest =
  | {
      kind: 'write';
      write: KvClientWrite;
      session?: ClientSession;
      scope?: KeyspaceScope;
      /**
       * `revision`: a conditional write (`cond`) that succeeds is answered without the key's record, its
       * revision only, so the leader reads nothing to answer it (the record's create revision and version
       * come from the row the write replaced). A failed condition still answers the record it failed on;
       * other writes are answered as usual.
       */
      answer?: 'revision';
    }
  | {
      kind: 'read';
      scope?: KeyspaceScope;
      op: KvReadOp;
      /** `range`: the first key (inclusive) and, when present, the end (exclusive). */
      keys: Uint8Array[];
      /** Arguments other than keys (see `KvReadOp`). */
      args?: Uint8Array[];
      /** `range`: the most records answered. */
      limit?: number;
    };

/** Why a client's write cannot become a command; the message is Redis' own. */
export class InvalidExpireError extends Error {
  override readonly name = 'InvalidExpireError';
  constructor(command: string) {
    super(`ERR invalid expire time in '${command}' command`);
  }
}

/** The absolute deadline of `expiry` at wall-clock `now`; 0 for none. Throws {@link InvalidExpireError} out of range. */
export function deadline(expiry: Expiry, now: number, command: string): number {
  switch (expiry.kind) {
    case 'none':
      return 0;
    case 'in': {
      // Redis 7 refuses a deadline that overflows; here the bound is what a JavaScript number holds exactly.
      const at = now + expiry.ms;
      if (!Number.isSafeInteger(expiry.ms) || !Number.isSafeInteger(at)) throw new InvalidExpireError(command);
      return at;
    }
    case 'at':
      if (!Number.isSafeInteger(expiry.ms)) throw new InvalidExpireError(command);
      return expiry.ms;
    default: {
      const never: never = expiry;
      throw new Error(`unknown expiry ${String(never)}`);
    }
  }
}

/** Whether `write` states its deadline relative to the time it is served. */
export function isRelative(write: KvClientWrite): boolean {
  switch (write.op) {
    case 'set':
    case 'getex':
      return write.expiry.kind === 'in';
    case 'expire':
      return write.deadline.kind === 'in';
    case 'exec':
      return write.writes.some(isRelative);
    case 'cond':
      return write.action.kind === 'put' && write.action.expiry.kind === 'in';
    default:
      return false;
  }
}

/**
 * The command `write` becomes at wall-clock `now` (the leader's, or the
 * receiving node's for deadlines), in `session` when given.
 */
export function toCommand(write: KvClientWrite, now: number, session?: ClientSession): KvCommand {
  const op = toOp(write, now);
  return session ? { ...op, session: { ...session } } : op;
}

function toOp(write: KvClientWrite, now: number): KvOp {
  switch (write.op) {
    case 'set': {
      const keep = write.expiry.kind === 'keep';
      const set: KvOp = {
        op: 'set',
        key: write.key,
        value: write.value,
        condition: write.condition,
        expiresAt: write.expiry.kind === 'keep' ? 0 : deadline(write.expiry, now, 'set'),
        returnOld: write.returnOld,
        now,
      };
      if (keep) set.keepTtl = true;
      return set;
    }
    case 'del':
      return { op: 'del', keys: write.keys, now };
    case 'incr':
      return { op: 'incr', key: write.key, delta: write.delta, now };
    case 'mset':
      return write.nx
        ? { op: 'mset', keys: write.keys, values: write.values, nx: true, now }
        : { op: 'mset', keys: write.keys, values: write.values, now };
    case 'append':
      return { op: 'append', key: write.key, value: write.value, now };
    case 'setrange':
      return { op: 'setrange', key: write.key, offset: write.offset, value: write.value, now };
    case 'getdel':
      return { op: 'getdel', key: write.key, now };
    case 'getex': {
      const e = write.expiry;
      if (e.kind === 'keep' || e.kind === 'persist')
        return { op: 'getex', key: write.key, expiry: e.kind, deadline: 0, now };
      return { op: 'getex', key: write.key, expiry: 'at', deadline: deadline(e, now, 'getex'), now };
    }
    case 'incrbyfloat':
      return { op: 'incrbyfloat', key: write.key, increment: write.increment, now };
    case 'rename':
      return { op: 'rename', key: write.key, dest: write.dest, nx: write.nx, now };
    case 'copy':
      return { op: 'copy', key: write.key, dest: write.dest, replace: write.replace, now };
    case 'flush':
      return { op: 'flush', now };
    case 'read':
      return { op: 'read', read: write.read, keys: write.keys, args: write.args ?? [], now };
    case 'exec':
      return { op: 'exec', ops: write.writes.map((w) => toOp(w, now)), watch: write.watch, now };
    case 'expire':
      return {
        op: 'expire',
        key: write.key,
        deadline: deadline(write.deadline, now, write.command),
        flag: write.flag,
        now,
      };
    case 'persist':
      return { op: 'persist', key: write.key, now };
    case 'delExpired':
      return { op: 'delExpired', keys: write.keys, now };
    case 'checksum':
      return { op: 'checksum', now };
    case 'cond':
      return {
        op: 'cond',
        key: write.key,
        compare: write.compare,
        action:
          write.action.kind === 'del'
            ? { kind: 'del' }
            : { kind: 'put', value: write.action.value, expiresAt: deadline(write.action.expiry, now, 'put') },
        now,
      };
    case 'collection':
      return { op: 'collection', name: write.name, keys: write.keys, args: write.args, now };
    default: {
      const never: never = write;
      throw new Error(`unknown write ${String(never)}`);
    }
  }
}
