import { CodecError } from '@cohort/core';
import type { KvCollectionType, KvRecord, PartitionKv } from '@cohort/storage';
import { addLongDouble, formatLongDouble, parseLongDouble } from './long-double.js';
import type { KvResult } from './result.js';

/**
 * Hashes and lists, Redis 7's commands on them, byte for byte.
 *
 * A hash or list is one row whose `type` says which and whose value is the
 * whole collection encoded (see {@link encodeItems}): every write decodes,
 * changes and re-encodes it, O(n) in the collection's size, and the whole
 * encoded collection counts against the value size limit. A hash keeps its
 * fields in insertion order (Redis' listpack order for a small hash); a
 * collection emptied by a write is deleted, as in Redis.
 */

export const WRONGTYPE: KvResult = {
  type: 'error',
  message: 'WRONGTYPE Operation against a key holding the wrong kind of value',
};
const OK: KvResult = { type: 'ok' };
const NIL: KvResult = { type: 'nil' };
const EMPTY_LIST: KvResult = { type: 'list', items: [] };

/** The range of a 64-bit signed integer, as Redis' integers and the log's `incr` deltas have it. */
export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
const INTEGER = /^(0|-?[1-9][0-9]*)$/;

/** The hash and list writes (a {@link KvOp} `collection`'s name). */
export const COLLECTION_WRITES = [
  'hset',
  'hsetnx',
  'hdel',
  'hincrby',
  'hincrbyfloat',
  'lpush',
  'rpush',
  'lpushx',
  'rpushx',
  'lpop',
  'rpop',
  'lset',
  'lrem',
  'ltrim',
  'linsert',
  'lmove',
  'lmpop',
] as const;
export type CollectionWrite = (typeof COLLECTION_WRITES)[number];

/** The hash and list reads (a `collection` read's name), and TYPE. */
export const COLLECTION_READS = [
  'type',
  'hget',
  'hmget',
  'hgetall',
  'hkeys',
  'hvals',
  'hlen',
  'hexists',
  'hstrlen',
  'llen',
  'lindex',
  'lrange',
  'lpos',
] as const;
export type CollectionRead = (typeof COLLECTION_READS)[number];

/** Encodes items (a list's elements, a hash's fields and values alternately): each a varint length and its bytes. */
export function encodeItems(items: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const it of items) size += varintSize(it.length) + it.length;
  const out = new Uint8Array(size);
  let p = 0;
  for (const it of items) {
    let n = it.length;
    while (n >= 0x80) {
      out[p++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    out[p++] = n;
    out.set(it, p);
    p += it.length;
  }
  return out;
}

function varintSize(n: number): number {
  let s = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

/** Decodes {@link encodeItems}' bytes (views into `data`); throws CodecError on bytes it did not write. */
export function decodeItems(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let p = 0;
  while (p < data.length) {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = data[p++];
      if (b === undefined)
        throw new CodecError(`collection encoding of ${data.length} bytes is truncated at byte ${p - 1}`);
      n += (b & 0x7f) * mul;
      if (b < 0x80) break;
      mul *= 128;
    }
    if (p + n > data.length)
      throw new CodecError(
        `collection encoding of ${data.length} bytes is truncated: an item of ${n} bytes at byte ${p}`,
      );
    out.push(data.subarray(p, p + n));
    p += n;
  }
  return out;
}

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

function text(b: Uint8Array | undefined): string {
  return b === undefined ? '' : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

function int(b: Uint8Array | undefined): number {
  return Number(text(b));
}

const bulk = (value: Uint8Array): KvResult => ({ type: 'bulk', value });
const n = (value: number | bigint): KvResult => ({ type: 'int', value: BigInt(value) });
const bulks = (items: Uint8Array[]): KvResult => ({ type: 'list', items: items.map(bulk) });

/** A hash as its field/value pairs in order. */
class Hash {
  constructor(readonly items: Uint8Array[]) {}
  find(field: Uint8Array): number {
    for (let i = 0; i < this.items.length; i += 2) if (eq(this.items[i]!, field)) return i;
    return -1;
  }
  get(field: Uint8Array): Uint8Array | undefined {
    const i = this.find(field);
    return i < 0 ? undefined : this.items[i + 1];
  }
  /** Sets a field; answers whether it is new. */
  set(field: Uint8Array, value: Uint8Array): boolean {
    const i = this.find(field);
    if (i >= 0) {
      this.items[i + 1] = value;
      return false;
    }
    this.items.push(field, value);
    return true;
  }
  del(field: Uint8Array): boolean {
    const i = this.find(field);
    if (i < 0) return false;
    this.items.splice(i, 2);
    return true;
  }
}

/** The live record of `key` at `now`, undefined when absent or expired (an expired one is not deleted here). */
function live(kv: PartitionKv, key: Uint8Array, now: number): KvRecord | undefined {
  const rec = kv.get(key);
  return rec && !(rec.expiresAt !== undefined && rec.expiresAt <= now) ? rec : undefined;
}

/** The items of a live key of `type`, [] when absent, or WRONGTYPE. */
function itemsOf(rec: KvRecord | undefined, type: KvCollectionType): Uint8Array[] | KvResult {
  if (rec === undefined) return [];
  if (rec.type !== type) return WRONGTYPE;
  return decodeItems(rec.value);
}

/**
 * A hash or list read (or TYPE) of `key` at log time `now`; it never writes.
 * Arguments were checked by the front end (integers in decimal).
 */
export function readCollection(
  kv: PartitionKv,
  name: CollectionRead,
  key: Uint8Array,
  args: Uint8Array[],
  now: number,
): KvResult {
  const rec = live(kv, key, now);
  if (name === 'type') return bulk(new TextEncoder().encode(rec === undefined ? 'none' : (rec.type ?? 'string')));
  const type: KvCollectionType = name.startsWith('h') ? 'hash' : 'list';
  const items = itemsOf(rec, type);
  if (!Array.isArray(items)) return items;
  const hash = new Hash(items);
  switch (name) {
    case 'hget': {
      const v = hash.get(args[0]!);
      return v === undefined ? NIL : bulk(v);
    }
    case 'hmget':
      return { type: 'list', items: args.map((f) => ((v) => (v === undefined ? NIL : bulk(v)))(hash.get(f))) };
    case 'hgetall':
      return bulks(items);
    case 'hkeys':
      return bulks(items.filter((_, i) => i % 2 === 0));
    case 'hvals':
      return bulks(items.filter((_, i) => i % 2 === 1));
    case 'hlen':
      return n(items.length / 2);
    case 'hexists':
      return n(hash.find(args[0]!) >= 0 ? 1 : 0);
    case 'hstrlen':
      return n(hash.get(args[0]!)?.length ?? 0);
    case 'llen':
      return n(items.length);
    case 'lindex': {
      let i = int(args[0]);
      if (i < 0) i += items.length;
      const v = items[i];
      return i < 0 || v === undefined ? NIL : bulk(v);
    }
    case 'lrange': {
      const r = span(items.length, int(args[0]), int(args[1]));
      return bulks(r === undefined ? [] : items.slice(r[0], r[1] + 1));
    }
    case 'lpos':
      return lpos(items, args);
    default: {
      const never: never = name;
      throw new Error(`unknown collection read ${String(never)}`);
    }
  }
}

/** LRANGE's and LTRIM's indexes as Redis computes them: [start, end] inclusive, undefined when empty. */
function span(len: number, startArg: number, endArg: number): [number, number] | undefined {
  let start = startArg < 0 ? startArg + len : startArg;
  let end = endArg < 0 ? endArg + len : endArg;
  if (start < 0) start = 0;
  if (start > end || start >= len) return undefined;
  if (end >= len) end = len - 1;
  return [start, end];
}

/** LPOS: args are the element, RANK (non-zero), COUNT (-1 without the option) and MAXLEN (0: unlimited). */
function lpos(items: Uint8Array[], args: Uint8Array[]): KvResult {
  const element = args[0]!;
  const rank = int(args[1]);
  const count = int(args[2]);
  const maxlen = int(args[3]);
  const matches: KvResult[] = [];
  const want = count < 0 ? 1 : count === 0 ? Number.POSITIVE_INFINITY : count;
  let skip = Math.abs(rank) - 1;
  const len = items.length;
  for (let k = 0; k < len && (maxlen === 0 || k < maxlen) && matches.length < want; k++) {
    const i = rank > 0 ? k : len - 1 - k;
    if (!eq(items[i]!, element)) continue;
    if (skip > 0) {
      skip--;
      continue;
    }
    matches.push(n(i));
  }
  if (count >= 0) return { type: 'list', items: matches };
  return matches[0] ?? NIL;
}

/**
 * Applies a hash or list write to `keys` (the key; LMOVE's source and
 * destination) at log index `index` and log time `now`. An expired key was
 * deleted by the caller before. Arguments were checked by the front end. A
 * collection whose encoding would pass `maxBytes` is refused with an error
 * and left as it was.
 */
export function applyCollection(
  kv: PartitionKv,
  name: CollectionWrite,
  keys: Uint8Array[],
  args: Uint8Array[],
  index: number,
  now: number,
  maxBytes: number,
): KvResult {
  try {
    return applyTo(kv, name, keys, args, index, now, maxBytes);
  } catch (err) {
    if (!(err instanceof TooLarge)) throw err;
    return {
      type: 'error',
      message: `ERR the ${name.startsWith('h') ? 'hash' : 'list'} would exceed the largest value Cohort stores (${maxBytes} bytes encoded)`,
    };
  }
}

/**
 * LMPOP (and BLPOP, BRPOP, BLMPOP, which retry it while it finds nothing):
 * pops up to `args[1]` elements from the `args[0]` end (`left`, `right`) of
 * the first of `keys` holding a list, answering `[key, [elements]]`; nil when
 * none holds one. The first key holding another type answers WRONGTYPE, as
 * Redis checks the keys in order.
 */
function lmpop(kv: PartitionKv, keys: Uint8Array[], args: Uint8Array[], index: number, now: number): KvResult {
  const left = text(args[0]) === 'left';
  const count = int(args[1]);
  for (const key of keys) {
    const rec = live(kv, key, now);
    if (rec === undefined) continue;
    if (rec.type !== 'list') return WRONGTYPE;
    const items = decodeItems(rec.value);
    const popped = left ? items.splice(0, count) : items.splice(-Math.min(count, items.length)).reverse();
    if (items.length === 0) kv.delete(key);
    else {
      const opts: { revision: number; type: KvCollectionType; expiresAt?: number } = { revision: index, type: 'list' };
      if (rec.expiresAt !== undefined) opts.expiresAt = rec.expiresAt;
      kv.put(key, encodeItems(items), opts);
    }
    return { type: 'list', items: [bulk(key), bulks(popped)] };
  }
  return NIL;
}

/** Thrown before anything is written when a collection would outgrow the value limit. */
class TooLarge extends Error {}

function applyTo(
  kv: PartitionKv,
  name: CollectionWrite,
  keys: Uint8Array[],
  args: Uint8Array[],
  index: number,
  now: number,
  maxBytes: number,
): KvResult {
  if (name === 'lmpop') return lmpop(kv, keys, args, index, now);
  const key = keys[0]!;
  const rec = live(kv, key, now);
  const type: KvCollectionType = name.startsWith('h') ? 'hash' : 'list';
  // HINCRBYFLOAT checks its increment before the key's type, as Redis does.
  let incr: ReturnType<typeof parseLongDouble>;
  if (name === 'hincrbyfloat') {
    incr = parseLongDouble(text(args[1]));
    if (incr === undefined) return { type: 'error', message: 'ERR value is not a valid float' };
    if ('inf' in incr) {
      return { type: 'error', message: 'ERR value is NaN or Infinity' };
    }
  }
  const found = itemsOf(rec, type);
  if (!Array.isArray(found)) return found;
  const items = found;
  const save = (): void => {
    if (items.length === 0) {
      if (rec) kv.delete(key);
      return;
    }
    const value = encodeItems(items);
    if (value.length > maxBytes) throw new TooLarge();
    const opts: { revision: number; type: KvCollectionType; expiresAt?: number } = { revision: index, type };
    if (rec?.expiresAt !== undefined) opts.expiresAt = rec.expiresAt;
    kv.put(key, value, opts);
  };
  const hash = new Hash(items);
  switch (name) {
    case 'hset': {
      let added = 0;
      for (let i = 0; i + 1 < args.length; i += 2) if (hash.set(args[i]!, args[i + 1]!)) added++;
      save();
      return n(added);
    }
    case 'hsetnx': {
      if (hash.find(args[0]!) >= 0) return n(0);
      hash.set(args[0]!, args[1]!);
      save();
      return n(1);
    }
    case 'hdel': {
      let removed = 0;
      for (const f of args) if (hash.del(f)) removed++;
      if (removed > 0) save();
      return n(removed);
    }
    case 'hincrby': {
      const old = hash.get(args[0]!);
      let base = 0n;
      if (old !== undefined) {
        const t = text(old);
        if (!INTEGER.test(t) || t.length > 20 || BigInt(t) < INT64_MIN || BigInt(t) > INT64_MAX) {
          return { type: 'error', message: 'ERR hash value is not an integer' };
        }
        base = BigInt(t);
      }
      const next = base + BigInt(text(args[1]));
      if (next < INT64_MIN || next > INT64_MAX) {
        return { type: 'error', message: 'ERR increment or decrement would overflow' };
      }
      hash.set(args[0]!, new TextEncoder().encode(next.toString()));
      save();
      return n(next);
    }
    case 'hincrbyfloat': {
      const old = hash.get(args[0]!);
      const base = parseLongDouble(old === undefined ? '0' : text(old));
      if (base === undefined) return { type: 'error', message: 'ERR hash value is not a float' };
      const sum = addLongDouble(base, incr!);
      if (sum === undefined) return { type: 'error', message: 'ERR increment would produce NaN or Infinity' };
      const value = new TextEncoder().encode(formatLongDouble(sum));
      hash.set(args[0]!, value);
      save();
      return bulk(value);
    }
    case 'lpush':
    case 'rpush':
    case 'lpushx':
    case 'rpushx': {
      if ((name === 'lpushx' || name === 'rpushx') && rec === undefined) return n(0);
      if (name.startsWith('l')) for (const e of args) items.unshift(e);
      else items.push(...args);
      save();
      return n(items.length);
    }
    case 'lpop':
    case 'rpop': {
      const counted = args.length > 0;
      if (rec === undefined) return counted ? { type: 'list', items: null } : NIL;
      const count = counted ? int(args[0]) : 1;
      if (count === 0) return EMPTY_LIST;
      const popped = name === 'lpop' ? items.splice(0, count) : items.splice(-Math.min(count, items.length)).reverse();
      save();
      return counted ? bulks(popped) : bulk(popped[0]!);
    }
    case 'lset': {
      if (rec === undefined) return { type: 'error', message: 'ERR no such key' };
      let i = int(args[0]);
      if (i < 0) i += items.length;
      if (i < 0 || i >= items.length) return { type: 'error', message: 'ERR index out of range' };
      items[i] = args[1]!;
      save();
      return OK;
    }
    case 'lrem': {
      const count = int(args[0]);
      const element = args[1]!;
      let removed = 0;
      const limit = count === 0 ? Number.POSITIVE_INFINITY : Math.abs(count);
      if (count >= 0) {
        for (let i = 0; i < items.length && removed < limit; ) {
          if (eq(items[i]!, element)) {
            items.splice(i, 1);
            removed++;
          } else i++;
        }
      } else {
        for (let i = items.length - 1; i >= 0 && removed < limit; i--) {
          if (eq(items[i]!, element)) {
            items.splice(i, 1);
            removed++;
          }
        }
      }
      if (removed > 0) save();
      return n(removed);
    }
    case 'ltrim': {
      if (rec === undefined) return OK;
      const r = span(items.length, int(args[0]), int(args[1]));
      const kept = r === undefined ? [] : items.slice(r[0], r[1] + 1);
      items.splice(0, items.length, ...kept);
      save();
      return OK;
    }
    case 'linsert': {
      if (rec === undefined) return n(0);
      const at = items.findIndex((e) => eq(e, args[1]!));
      if (at < 0) return n(-1);
      items.splice(text(args[0]) === 'before' ? at : at + 1, 0, args[2]!);
      save();
      return n(items.length);
    }
    case 'lmove': {
      if (rec === undefined) return NIL;
      const dest = keys[1]!;
      const same = eq(key, dest);
      const destRec = same ? rec : live(kv, dest, now);
      if (destRec !== undefined && destRec.type !== 'list') return WRONGTYPE;
      const element = text(args[0]) === 'left' ? items.shift()! : items.pop()!;
      const target = same ? items : destRec === undefined ? [] : decodeItems(destRec.value);
      if (text(args[1]) === 'left') target.unshift(element);
      else target.push(element);
      if (same) {
        save();
        return bulk(element);
      }
      // The destination is checked against the limit before the source changes: all or nothing.
      const value = encodeItems(target);
      if (value.length > maxBytes) throw new TooLarge();
      save();
      const opts: { revision: number; type: KvCollectionType; expiresAt?: number } = { revision: index, type };
      if (destRec?.expiresAt !== undefined) opts.expiresAt = destRec.expiresAt;
      kv.put(dest, value, opts);
      return bulk(element);
    }
    default: {
      const never: never = name;
      throw new Error(`unknown collection write ${String(never)}`);
    }
  }
}
