import type { KvCollectionType, KvPutOptions, KvRecord, PartitionKv } from '@cohort/storage';
import { INT64_MAX, INT64_MIN, WRONGTYPE, applyCollection } from './collections.js';
import type { CompareOp, ExpireFlag, KvCompare, KvOp, WatchedKey } from './command.js';
import { addLongDouble, formatLongDouble, parseLongDouble } from './long-double.js';
import { decimal, readResult } from './reads.js';
import type { KvResult } from './result.js';

/** Redis' `string2ll`: no sign on zero (`-0` is not an integer), no leading zeros or plus sign. */
const INTEGER = /^(0|-?[1-9][0-9]*)$/;
const NOT_INTEGER: KvResult = { type: 'error', message: 'ERR value is not an integer or out of range' };
const NOT_FLOAT: KvResult = { type: 'error', message: 'ERR value is not a valid float' };
const TOO_LONG: KvResult = { type: 'error', message: 'ERR string exceeds maximum allowed size (proto-max-bulk-len)' };
const OK: KvResult = { type: 'ok' };
const NIL: KvResult = { type: 'nil' };
const ZERO: KvResult = { type: 'int', value: 0n };
const ONE: KvResult = { type: 'int', value: 1n };

/**
 * The largest value APPEND and SETRANGE may make (Redis' `proto-max-bulk-len`
 * is 512 MiB; Cohort's is the RESP front end's largest bulk string), so a
 * value written can always be read back.
 */
export const MAX_VALUE_BYTES = 16 * 1024 * 1024;

/** Whether `rec` is expired at log time `now`. */
export function isExpired(rec: KvRecord, now: number): boolean {
  return rec.expiresAt !== undefined && rec.expiresAt <= now;
}

/**
 * Looks a key up at the command's time; an expired key is deleted here, so
 * every replica drops it at the same log position and treats it as absent.
 */
function current(kv: PartitionKv, key: Uint8Array, now: number): KvRecord | undefined {
  const rec = kv.get(key);
  if (rec === undefined) return undefined;
  if (!isExpired(rec, now)) return rec;
  kv.delete(key);
  return undefined;
}

/** Whether every watched key still has the revision it had when watched (0: absent). */
function unchanged(kv: PartitionKv, watch: WatchedKey[], now: number): boolean {
  return watch.every((w) => (current(kv, w.key, now)?.modifyRevision ?? 0) === w.revision);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function put(
  kv: PartitionKv,
  key: Uint8Array,
  value: Uint8Array,
  revision: number,
  expiresAt?: number,
  type?: KvCollectionType,
  now?: number,
): void {
  kv.put(key, value, putOptions(revision, expiresAt, type, now));
}

/** The options of a put at `revision`, the optional ones only when given. */
function putOptions(revision: number, expiresAt?: number, type?: KvCollectionType, now?: number): KvPutOptions {
  const opts: KvPutOptions = { revision };
  if (expiresAt !== undefined) opts.expiresAt = expiresAt;
  if (type !== undefined) opts.type = type;
  if (now !== undefined) opts.now = now;
  return opts;
}

/** A string command's view of `key`: its live record, or WRONGTYPE when it holds a hash or list. */
function currentString(kv: PartitionKv, key: Uint8Array, now: number): KvRecord | undefined | KvResult {
  const rec = current(kv, key, now);
  return rec?.type !== undefined ? WRONGTYPE : rec;
}

function isResult(x: KvRecord | KvResult | undefined): x is KvResult {
  return x !== undefined && 'type' in x && !('key' in x);
}

/** EXPIRE's flag check (Redis 7): a key without expiry counts as an infinite deadline. */
function expireAllowed(flag: ExpireFlag, current: number | undefined, deadline: number): boolean {
  switch (flag) {
    case 'always':
      return true;
    case 'nx':
      return current === undefined;
    case 'xx':
      return current !== undefined;
    case 'gt':
      return current !== undefined && deadline > current;
    case 'lt':
      return current === undefined || deadline < current;
    case 'xxlt':
      return current !== undefined && deadline < current;
    default: {
      const never: never = flag;
      throw new Error(`unknown expire flag ${String(never)}`);
    }
  }
}

/** Whether `a` relates to `b` as `op` says (a negative, zero or positive `a - b` sign). */
function relates(sign: number, op: CompareOp = '='): boolean {
  switch (op) {
    case '=':
      return sign === 0;
    case '!=':
      return sign !== 0;
    case '<':
      return sign < 0;
    case '>':
      return sign > 0;
    default: {
      const never: never = op;
      throw new Error(`unknown comparison operator ${String(never)}`);
    }
  }
}

/**
 * Whether a conditional write's comparison holds for the key's current
 * record, as etcd evaluates it: an absent key has revisions and version 0,
 * and no value (a value comparison on it fails, whatever its operator).
 */
export function compareHolds(compare: KvCompare, rec: KvRecord | undefined): boolean {
  switch (compare.kind) {
    case 'always':
      return true;
    case 'absent':
      return rec === undefined;
    case 'present':
      return rec !== undefined;
    case 'modRevision':
      return relates(Math.sign((rec?.modifyRevision ?? 0) - compare.value), compare.op);
    case 'createRevision':
      return relates(Math.sign((rec?.createRevision ?? 0) - compare.value), compare.op);
    case 'version':
      return relates(Math.sign((rec?.version ?? 0) - compare.value), compare.op);
    case 'value':
      return (
        rec !== undefined && relates(Buffer.compare(Buffer.from(rec.value), Buffer.from(compare.value)), compare.op)
      );
    default: {
      const never: never = compare;
      throw new Error(`unknown comparison ${String(never)}`);
    }
  }
}

/**
 * Applies one operation to a partition at log index `index` (the revision of
 * every key it writes) and log time `now`. Deterministic: reads nothing but
 * the partition and the command.
 */
export function applyOp(kv: PartitionKv, cmd: KvOp, index: number, now: number): KvResult {
  switch (cmd.op) {
    case 'set': {
      if (
        cmd.condition === 'always' &&
        !cmd.returnOld &&
        !cmd.keepTtl &&
        (cmd.expiresAt === 0 || cmd.expiresAt > now)
      ) {
        // Needs nothing of the old row: a put over whatever the key holds (one expired by now counts as
        // absent, as `current` would have deleted it), which the store may write without reading it.
        put(kv, cmd.key, cmd.value, index, cmd.expiresAt === 0 ? undefined : cmd.expiresAt, undefined, now);
        return OK;
      }
      const old = current(kv, cmd.key, now);
      // SET replaces a hash or list, but SET ... GET cannot answer one's value.
      if (cmd.returnOld && old?.type !== undefined) return WRONGTYPE;
      // Redis 7: with GET the answer is the old value whether or not NX/XX let the write happen.
      const answer: KvResult = cmd.returnOld ? (old ? { type: 'bulk', value: old.value } : NIL) : OK;
      if ((cmd.condition === 'nx' && old) || (cmd.condition === 'xx' && !old)) return cmd.returnOld ? answer : NIL;
      const expiresAt = cmd.keepTtl ? old?.expiresAt : cmd.expiresAt === 0 ? undefined : cmd.expiresAt;
      if (expiresAt !== undefined && expiresAt <= now) {
        // Redis: SET with a deadline already past stores nothing visible; keep the replicas' state minimal.
        if (old) kv.delete(cmd.key);
      } else {
        put(kv, cmd.key, cmd.value, index, expiresAt);
      }
      return answer;
    }
    case 'del': {
      let n = 0n;
      for (const key of cmd.keys) {
        if (current(kv, key, now)) {
          kv.delete(key);
          n++;
        }
      }
      return { type: 'int', value: n };
    }
    case 'incr': {
      const old = currentString(kv, cmd.key, now);
      if (isResult(old)) return old;
      const text = old ? Buffer.from(old.value).toString('latin1') : '0';
      if (!INTEGER.test(text) || text.length > 20) return NOT_INTEGER;
      const base = BigInt(text);
      if (base < INT64_MIN || base > INT64_MAX) return NOT_INTEGER;
      const next = base + cmd.delta;
      if (next < INT64_MIN || next > INT64_MAX) {
        return { type: 'error', message: 'ERR increment or decrement would overflow' };
      }
      // INCR keeps the key's expiry, as in Redis.
      put(kv, cmd.key, new TextEncoder().encode(next.toString()), index, old?.expiresAt);
      return { type: 'int', value: next };
    }
    case 'mset':
      if (cmd.nx && cmd.keys.some((key) => current(kv, key, now))) return ZERO;
      cmd.keys.forEach((key, i) => {
        put(kv, key, cmd.values[i] as Uint8Array, index);
      });
      return cmd.nx ? ONE : OK;
    case 'append': {
      const old = currentString(kv, cmd.key, now);
      if (isResult(old)) return old;
      const value = old ? concat(old.value, cmd.value) : cmd.value;
      if (value.length > MAX_VALUE_BYTES) return TOO_LONG;
      put(kv, cmd.key, value, index, old?.expiresAt);
      return { type: 'int', value: BigInt(value.length) };
    }
    case 'setrange': {
      const old = currentString(kv, cmd.key, now);
      if (isResult(old)) return old;
      // Redis: an empty value changes nothing (and creates no key), whatever the offset.
      if (cmd.value.length === 0) return { type: 'int', value: BigInt(old?.value.length ?? 0) };
      const end = cmd.offset + cmd.value.length;
      if (end > MAX_VALUE_BYTES) return TOO_LONG;
      const value = new Uint8Array(Math.max(end, old?.value.length ?? 0));
      if (old) value.set(old.value);
      value.set(cmd.value, cmd.offset);
      put(kv, cmd.key, value, index, old?.expiresAt);
      return { type: 'int', value: BigInt(value.length) };
    }
    case 'getdel': {
      const old = currentString(kv, cmd.key, now);
      if (isResult(old)) return old;
      if (!old) return NIL;
      kv.delete(cmd.key);
      return { type: 'bulk', value: old.value };
    }
    case 'getex': {
      const old = currentString(kv, cmd.key, now);
      if (isResult(old)) return old;
      if (!old) return NIL;
      if (cmd.expiry === 'at' && cmd.deadline <= now) kv.delete(cmd.key);
      else if (cmd.expiry === 'at') put(kv, cmd.key, old.value, index, cmd.deadline);
      else if (cmd.expiry === 'persist' && old.expiresAt !== undefined) put(kv, cmd.key, old.value, index);
      return { type: 'bulk', value: old.value };
    }
    case 'incrbyfloat': {
      const old = currentString(kv, cmd.key, now);
      if (isResult(old)) return old;
      const base = old ? parseLongDouble(Buffer.from(old.value).toString('latin1')) : parseLongDouble('0');
      const incr = parseLongDouble(Buffer.from(cmd.increment).toString('latin1'));
      if (base === undefined || incr === undefined) return NOT_FLOAT;
      const sum = addLongDouble(base, incr);
      if (sum === undefined) return { type: 'error', message: 'ERR increment would produce NaN or Infinity' };
      const value = new TextEncoder().encode(formatLongDouble(sum));
      put(kv, cmd.key, value, index, old?.expiresAt);
      return { type: 'bulk', value };
    }
    case 'rename': {
      const old = current(kv, cmd.key, now);
      if (!old) return { type: 'error', message: 'ERR no such key' };
      const same = Buffer.compare(cmd.key, cmd.dest) === 0;
      if (cmd.nx) {
        if (same || current(kv, cmd.dest, now)) return ZERO;
      } else if (same) return OK;
      // The destination is a new key: its create revision is this write, not the old destination's.
      kv.delete(cmd.dest);
      put(kv, cmd.dest, old.value, index, old.expiresAt, old.type);
      kv.delete(cmd.key);
      return cmd.nx ? ONE : OK;
    }
    case 'copy': {
      if (Buffer.compare(cmd.key, cmd.dest) === 0) {
        return { type: 'error', message: 'ERR source and destination objects are the same' };
      }
      const old = current(kv, cmd.key, now);
      if (!old) return ZERO;
      if (current(kv, cmd.dest, now) && !cmd.replace) return ZERO;
      kv.delete(cmd.dest);
      put(kv, cmd.dest, old.value, index, old.expiresAt, old.type);
      return ONE;
    }
    case 'flush':
      for (;;) {
        const page = kv.scan({ limit: 1024 });
        if (page.length === 0) return OK;
        for (const rec of page) kv.delete(rec.key);
      }
    case 'read':
      // RANDOMKEY starts from a point the entry fixes, so every replica answers alike.
      return readResult(kv, cmd.read, cmd.keys, cmd.args, now, decimal(index));
    case 'exec':
      if (!unchanged(kv, cmd.watch, now)) return { type: 'list', items: null };
      return { type: 'list', items: cmd.ops.map((op) => applyOp(kv, op, index, now)) };
    case 'expire': {
      const old = current(kv, cmd.key, now);
      if (!old || !expireAllowed(cmd.flag, old.expiresAt, cmd.deadline)) return { type: 'int', value: 0n };
      if (cmd.deadline <= now) kv.delete(cmd.key);
      else put(kv, cmd.key, old.value, index, cmd.deadline, old.type);
      return { type: 'int', value: 1n };
    }
    case 'persist': {
      const old = current(kv, cmd.key, now);
      if (!old || old.expiresAt === undefined) return { type: 'int', value: 0n };
      put(kv, cmd.key, old.value, index, undefined, old.type);
      return { type: 'int', value: 1n };
    }
    case 'delExpired': {
      let n = 0n;
      for (const key of cmd.keys) {
        const rec = kv.get(key);
        // Only if still expired at this entry's time: a key rewritten since the sweep survives.
        if (rec && isExpired(rec, now)) {
          kv.delete(key);
          n++;
        }
      }
      return { type: 'int', value: n };
    }
    case 'checksum':
      return { type: 'int', value: BigInt(index) };
    case 'cond': {
      if (
        cmd.compare.kind === 'always' &&
        cmd.action.kind === 'put' &&
        (cmd.action.expiresAt === 0 || cmd.action.expiresAt > now)
      ) {
        // A plain put (an HTTP PUT without a condition): like a plain SET, a put over whatever the key holds.
        // Its answer carries the record written, whose create revision and version the store works out when
        // the answer is read (on the node that answers the client; a follower drops its answer unread).
        const { value, expiresAt } = cmd.action;
        const rec = kv.put(cmd.key, value, putOptions(index, expiresAt === 0 ? undefined : expiresAt, undefined, now));
        return { type: 'cond', succeeded: true, revision: index, record: rec };
      }
      const old = current(kv, cmd.key, now);
      if (!compareHolds(cmd.compare, old)) {
        return old
          ? { type: 'cond', succeeded: false, revision: index, record: old }
          : { type: 'cond', succeeded: false, revision: index };
      }
      if (cmd.action.kind === 'del') {
        if (!old) return { type: 'cond', succeeded: true, revision: index };
        kv.delete(cmd.key);
        return { type: 'cond', succeeded: true, revision: index, record: old };
      }
      const { expiresAt } = cmd.action;
      put(kv, cmd.key, cmd.action.value, index, expiresAt === 0 ? undefined : expiresAt);
      const rec = kv.get(cmd.key);
      return rec
        ? { type: 'cond', succeeded: true, revision: index, record: rec }
        : { type: 'cond', succeeded: true, revision: index };
    }
    case 'collection':
      // An expired key is deleted first: the collection written is a new key.
      for (const key of cmd.keys) current(kv, key, now);
      return applyCollection(kv, cmd.name, cmd.keys, cmd.args, index, now, MAX_VALUE_BYTES);
    case 'txnPrepare':
    case 'txnCommit':
    case 'txnAbort':
    case 'txnResolve':
    case 'txnForget':
      // The state machine applies transaction steps itself (src/txn/apply-txn.ts); nested, they never decode.
      return { type: 'error', message: `ERR ${cmd.op} cannot be applied here` };
    default: {
      const never: never = cmd;
      throw new Error(`unknown command ${String(never)}`);
    }
  }
}
