import type { KvCommand, SetCondition } from './command.js';
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
      expiry: Expiry;
      /** Return the previous value (SET ... GET). */
      returnOld: boolean;
    }
  | { op: 'del'; keys: Uint8Array[] }
  | { op: 'incr'; key: Uint8Array; delta: bigint }
  | { op: 'mset'; keys: Uint8Array[]; values: Uint8Array[] };

/** A request as the front ends hand it to {@link KvService.execute}. */
export type KvClientRequest =
  | { kind: 'write'; write: KvClientWrite; session?: ClientSession }
  | { kind: 'read'; op: KvReadOp; keys: Uint8Array[] };

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
  return write.op === 'set' && write.expiry.kind === 'in';
}

/** The command `write` becomes at wall-clock `now` (the leader's, or the receiving node's for deadlines). */
export function toCommand(write: KvClientWrite, now: number): KvCommand {
  switch (write.op) {
    case 'set':
      return {
        op: 'set',
        key: write.key,
        value: write.value,
        condition: write.condition,
        expiresAt: deadline(write.expiry, now, 'set'),
        returnOld: write.returnOld,
        now,
      };
    case 'del':
      return { op: 'del', keys: write.keys, now };
    case 'incr':
      return { op: 'incr', key: write.key, delta: write.delta, now };
    case 'mset':
      return { op: 'mset', keys: write.keys, values: write.values, now };
    default: {
      const never: never = write;
      throw new Error(`unknown write ${String(never)}`);
    }
  }
}
