import { type Reply, errorReply } from './reply.js';

/** Redis' shared error replies, word for word. */
export const SYNTAX = errorReply('ERR syntax error');
export const NOT_INTEGER = errorReply('ERR value is not an integer or out of range');

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Redis' `string2ll`: a signed 64-bit decimal without leading zeros, plus sign or `-0`; undefined otherwise. */
export function parseInteger(arg: Buffer): bigint | undefined {
  const s = arg.toString('latin1');
  if (!/^(0|-?[1-9][0-9]{0,18})$/.test(s)) return undefined;
  const n = BigInt(s);
  return n >= INT64_MIN && n <= INT64_MAX ? n : undefined;
}

/** The word `arg` upper-cased, for matching options case-insensitively. */
export function word(arg: Buffer | undefined): string {
  return arg === undefined ? '' : arg.toString('latin1').toUpperCase();
}

/** `ERR invalid expire time in '<command>' command`. */
export function invalidExpire(command: string): Reply {
  return errorReply(`ERR invalid expire time in '${command}' command`);
}

/**
 * A SET or GETEX expiry option's time as Redis 7 checks it
 * (`getExpireMillisecondsOrReply`): an integer, above zero, whose
 * milliseconds do not overflow, also once the current time is added for a
 * relative one. Cohort's deadlines are JavaScript numbers: one past 2^53 ms
 * (the year 285,000) is an invalid expire time here, where Redis takes it.
 */
export function expireOption(opt: string, arg: Buffer, command: string): { kind: 'in' | 'at'; ms: number } | Reply {
  const n = parseInteger(arg);
  if (n === undefined) return NOT_INTEGER;
  const seconds = opt === 'EX' || opt === 'EXAT';
  if (n <= 0n || (seconds && n > INT64_MAX / 1000n)) return invalidExpire(command);
  const ms = seconds ? n * 1000n : n;
  const relative = opt === 'EX' || opt === 'PX';
  // Redis adds the time now and refuses an overflow; the bound here leaves room for any clock.
  if (ms + (relative ? BigInt(Date.now()) : 0n) > BigInt(Number.MAX_SAFE_INTEGER)) return invalidExpire(command);
  return { kind: relative ? 'in' : 'at', ms: Number(ms) };
}
