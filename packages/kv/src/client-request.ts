import type { ExpireFlag, KvCommand, KvCompare, KvOp, SetCondition } from './command.js';
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
  | { op: 'mset'; keys: Uint8Array[]; values: Uint8Array[] }
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
    };

/** A request as the front ends hand it to {@link KvService.execute}. */
export type KvClientRequest =
  | { kind: 'write'; write: KvClientWrite; session?: ClientSession }
  | {
      kind: 'read';
      op: KvReadOp;
      /** `range`: the first key (inclusive) and, when present, the end (exclusive). */
      keys: Uint8Array[];
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
  return (
    (write.op === 'set' && write.expiry.kind === 'in') ||
    (write.op === 'expire' && write.deadline.kind === 'in') ||
    (write.op === 'cond' && write.action.kind === 'put' && write.action.expiry.kind === 'in')
  );
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
      return { op: 'mset', keys: write.keys, values: write.values, now };
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
    default: {
      const never: never = write;
      throw new Error(`unknown write ${String(never)}`);
    }
  }
}
