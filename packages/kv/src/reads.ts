import type { PartitionKv } from '@cohort/storage';
import { isExpired } from './apply-op.js';
import { COLLECTION_READS, WRONGTYPE, readCollection } from './collections.js';
import { globMatch } from './glob.js';
import type { KvReadOp } from './request.js';
import type { KvResult } from './result.js';

/**
 * The reads of a partition at log time `now`, shared by the state machine's
 * linearizable reads and the reads queued in an EXEC (applied in its entry).
 * They never write: an expired key reads as absent.
 */

/** The value of `key` if present and not expired at `now`. */
export function liveValue(kv: PartitionKv, key: Uint8Array, now: number): Uint8Array | undefined {
  const rec = kv.get(key);
  return rec && !isExpired(rec, now) ? rec.value : undefined;
}

/** Remaining time to live of `key` in ms (PTTL): -2 when absent or expired, -1 when it never expires. */
export function ttl(kv: PartitionKv, key: Uint8Array, now: number): number {
  const rec = kv.get(key);
  if (!rec || isExpired(rec, now)) return -2;
  return rec.expiresAt === undefined ? -1 : rec.expiresAt - now;
}

/** The absolute deadline of `key` in ms (PEXPIRETIME): -2 when absent or expired, -1 when it never expires. */
export function expireTime(kv: PartitionKv, key: Uint8Array, now: number): number {
  const rec = kv.get(key);
  if (!rec || isExpired(rec, now)) return -2;
  return rec.expiresAt ?? -1;
}

/** The revision of the last write to `key` (WATCH), 0 when absent or expired. */
export function revision(kv: PartitionKv, key: Uint8Array, now: number): number {
  const rec = kv.get(key);
  return rec && !isExpired(rec, now) ? rec.modifyRevision : 0;
}

/**
 * One SCAN step: looks at up to `count` rows after `after` (from the first
 * without it), in byte order, and answers those live at `now` that
 * `pattern` matches, and the last row looked at when more may follow. A
 * key present for the whole iteration is answered exactly once.
 */
export function scan(
  kv: PartitionKv,
  after: Uint8Array | undefined,
  pattern: Uint8Array | undefined,
  count: number,
  now: number,
  type?: string,
): { keys: Uint8Array[]; next?: Uint8Array } {
  // The first key after `after` in byte order is `after` followed by a zero byte.
  const rows =
    after === undefined
      ? kv.scan({ limit: count })
      : kv.scan({ start: Buffer.concat([after, new Uint8Array(1)]), limit: count });
  const keys = rows
    .filter(
      (r) =>
        !isExpired(r, now) &&
        (type === undefined || (r.type ?? 'string') === type) &&
        (pattern === undefined || globMatch(pattern, r.key)),
    )
    .map((r) => r.key);
  const last = rows[rows.length - 1];
  return rows.length < count || last === undefined ? { keys } : { keys, next: last.key };
}

/** Every key live at `now` that `pattern` matches (Redis glob; undefined: all), in byte order (KEYS). */
export function keys(kv: PartitionKv, pattern: Uint8Array | undefined, now: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let after: Uint8Array | undefined;
  for (;;) {
    const page = scan(kv, after, pattern, 1024, now);
    out.push(...page.keys);
    if (page.next === undefined) return out;
    after = page.next;
  }
}

/**
 * A key live at `now` (RANDOMKEY): the first at or after `from` in byte
 * order, wrapping around; undefined when there is none. Keys right after a
 * wide gap come up more often.
 */
export function keyFrom(kv: PartitionKv, from: Uint8Array, now: number): Uint8Array | undefined {
  for (const start of [from, undefined]) {
    let after: Uint8Array | undefined;
    for (let pages = 0; pages < 64; pages++) {
      const rows =
        after !== undefined
          ? kv.scan({ start: Buffer.concat([after, new Uint8Array(1)]), limit: 64 })
          : start !== undefined
            ? kv.scan({ start, limit: 64 })
            : kv.scan({ limit: 64 });
      const live = rows.find((r) => !isExpired(r, now));
      if (live) return live.key;
      if (rows.length < 64) break;
      after = rows[rows.length - 1]!.key;
    }
  }
  return undefined;
}

/** The reads an EXEC may queue (see `KvReadOp`). */
export type ExecRead = Exclude<KvReadOp, 'revisions' | 'range' | 'txnRecord'>;

const encoder = new TextEncoder();

/** A read of `op` as a result; `seed` picks RANDOMKEY's starting point. */
export function readResult(
  kv: PartitionKv,
  op: ExecRead,
  ks: Uint8Array[],
  args: Uint8Array[],
  now: number,
  seed: Uint8Array,
): KvResult {
  const bulkOrNil = (v: Uint8Array | undefined): KvResult =>
    v === undefined ? { type: 'nil' } : { type: 'bulk', value: v };
  const one = ks[0] ?? new Uint8Array();
  switch (op) {
    case 'get': {
      const rec = kv.get(one);
      if (rec && !isExpired(rec, now) && rec.type !== undefined) return WRONGTYPE;
      return bulkOrNil(liveValue(kv, one, now));
    }
    case 'mget':
      // MGET answers nil for a hash or list, as for an absent key.
      return {
        type: 'list',
        items: ks.map((k) => bulkOrNil(kv.get(k)?.type === undefined ? liveValue(kv, k, now) : undefined)),
      };
    case 'exists':
      return { type: 'int', value: BigInt(ks.filter((k) => liveValue(kv, k, now) !== undefined).length) };
    case 'pttl':
      return { type: 'int', value: BigInt(ttl(kv, one, now)) };
    case 'pexpiretime':
      return { type: 'int', value: BigInt(expireTime(kv, one, now)) };
    case 'keys': {
      // Redis: `*` is every key, the empty one included (which the glob `*` does not match).
      const pattern = args[0] !== undefined && !(args[0].length === 1 && args[0][0] === 0x2a) ? args[0] : undefined;
      return { type: 'list', items: keys(kv, pattern, now).map((value) => ({ type: 'bulk', value })) };
    }
    case 'scan': {
      const [from, pattern, count, type] = args;
      // The first argument is empty to start, or a 1 byte and the key to resume after (the empty key included).
      const after = from !== undefined && from.length > 0 ? from.subarray(1) : undefined;
      // SCAN TYPE: a key of another type is looked at but not answered (as in Redis).
      const typeName = type === undefined || type.length === 0 ? undefined : Buffer.from(type).toString().toLowerCase();
      const page = scan(
        kv,
        after,
        pattern === undefined || pattern.length === 0 ? undefined : pattern,
        Math.max(1, Number(count === undefined ? 10 : Buffer.from(count).toString()) || 10),
        now,
        typeName,
      );
      const found = page.keys;
      return {
        type: 'list',
        items: [bulkOrNil(page.next), ...found.map((value): KvResult => ({ type: 'bulk', value }))],
      };
    }
    case 'dbsize':
      return { type: 'int', value: BigInt(kv.count()) };
    case 'randomkey':
      return bulkOrNil(keyFrom(kv, seed, now));
    case 'collection': {
      const [first, ...rest] = args;
      const name = COLLECTION_READS.find((r) => first !== undefined && r === Buffer.from(first).toString('latin1'));
      if (name === undefined) return { type: 'error', message: 'ERR unknown hash or list read' };
      return readCollection(kv, name, one, rest, now);
    }
    default: {
      const never: never = op;
      throw new Error(`unknown read ${String(never)}`);
    }
  }
}

/** `n` as the decimal bytes the read arguments carry. */
export function decimal(n: number | bigint): Uint8Array {
  return encoder.encode(String(n));
}
