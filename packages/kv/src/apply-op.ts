import type { PartitionKv } from '@cohort/storage';
import type { KvRecord } from '@cohort/storage';
import type { ExpireFlag, KvCompare, KvOp } from './command.js';
import type { KvResult } from './result.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INTEGER = /^-?(0|[1-9][0-9]*)$/;
const NOT_INTEGER: KvResult = { type: 'error', message: 'ERR value is not an integer or out of range' };

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

function put(kv: PartitionKv, key: Uint8Array, value: Uint8Array, revision: number, expiresAt?: number): void {
  kv.put(key, value, expiresAt === undefined ? { revision } : { revision, expiresAt });
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
    default: {
      const never: never = flag;
      throw new Error(`unknown expire flag ${String(never)}`);
    }
  }
}

/** Whether a conditional write's comparison holds for the key's current record. */
export function compareHolds(compare: KvCompare, rec: KvRecord | undefined): boolean {
  switch (compare.kind) {
    case 'always':
      return true;
    case 'absent':
      return rec === undefined;
    case 'modRevision':
      // etcd: a missing key has mod revision 0.
      return (rec?.modifyRevision ?? 0) === compare.value;
    case 'version':
      return (rec?.version ?? 0) === compare.value;
    case 'value':
      return rec !== undefined && Buffer.compare(Buffer.from(rec.value), Buffer.from(compare.value)) === 0;
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
      const old = current(kv, cmd.key, now);
      if ((cmd.condition === 'nx' && old) || (cmd.condition === 'xx' && !old)) return { type: 'nil' };
      const expiresAt = cmd.keepTtl ? old?.expiresAt : cmd.expiresAt === 0 ? undefined : cmd.expiresAt;
      if (expiresAt !== undefined && expiresAt <= now) {
        // Redis: SET with a deadline already past stores nothing visible; keep the replicas' state minimal.
        if (old) kv.delete(cmd.key);
      } else {
        put(kv, cmd.key, cmd.value, index, expiresAt);
      }
      if (cmd.returnOld) return old ? { type: 'bulk', value: old.value } : { type: 'nil' };
      return { type: 'ok' };
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
      const old = current(kv, cmd.key, now);
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
      cmd.keys.forEach((key, i) => {
        put(kv, key, cmd.values[i] as Uint8Array, index);
      });
      return { type: 'ok' };
    case 'expire': {
      const old = current(kv, cmd.key, now);
      if (!old || !expireAllowed(cmd.flag, old.expiresAt, cmd.deadline)) return { type: 'int', value: 0n };
      if (cmd.deadline <= now) kv.delete(cmd.key);
      else put(kv, cmd.key, old.value, index, cmd.deadline);
      return { type: 'int', value: 1n };
    }
    case 'persist': {
      const old = current(kv, cmd.key, now);
      if (!old || old.expiresAt === undefined) return { type: 'int', value: 0n };
      put(kv, cmd.key, old.value, index);
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
    default: {
      const never: never = cmd;
      throw new Error(`unknown command ${String(never)}`);
    }
  }
}
