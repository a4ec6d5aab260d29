import { ConfigError, DEFAULT_MAX_FRAME_BYTES } from '@cohort/core';
import type { KvClientRequest, KvClientWrite, KvResponse } from '@cohort/kv';
import type { KvApi } from './kv-api.js';

/**
 * The sizes a client write may have, checked on the node the client reached
 * before anything is proposed, so no log entry can outgrow a transport frame
 * (an entry the leader cannot send makes every append to a follower fail).
 */
export interface WriteLimits {
  /** Longest key, in bytes. @default 64 KiB */
  maxKeyBytes: number;
  /** Longest value (a string, a hash field or value, a list element), in bytes. @default 1 MiB */
  maxValueBytes: number;
  /** Most key and value bytes in one write (one log entry: an MSET, an EXEC). @default 8 MiB */
  maxCommandBytes: number;
  /**
   * Most keys one transaction across partitions touches (comparisons and
   * operations of both branches); a larger one is refused before any intent
   * is written. @default 1024
   */
  maxTxnKeys: number;
}

/** The limits one write's sizes meet (all but the transaction's key count). */
export type SizeLimits = Omit<WriteLimits, 'maxTxnKeys'>;

export const DEFAULT_WRITE_LIMITS: WriteLimits = {
  maxKeyBytes: 64 * 1024,
  maxValueBytes: 1024 * 1024,
  maxCommandBytes: 8 * 1024 * 1024,
  maxTxnKeys: 1024,
};

/**
 * Room a log entry and the Raft append carrying it need beyond the write's
 * keys and values (encoding, session, headers): the command limit must stay
 * this far below the frame size.
 */
export const FRAME_HEADROOM_BYTES = 64 * 1024;

/** Throws a ConfigError unless `l` is consistent and every write it admits fits in a frame of `maxFrameBytes`. */
export function checkWriteLimits(l: WriteLimits, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): void {
  const problems: string[] = [];
  for (const [name, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v < 1) problems.push(`${name} must be a whole number above 0, got ${v}`);
  }
  if (l.maxKeyBytes > l.maxCommandBytes) problems.push('the key limit must not exceed the command limit');
  if (l.maxValueBytes > l.maxCommandBytes) problems.push('the value limit must not exceed the command limit');
  const ceiling = maxFrameBytes - FRAME_HEADROOM_BYTES;
  if (l.maxCommandBytes > ceiling) {
    problems.push(
      `the command limit ${l.maxCommandBytes} must stay below the transport frame size (at most ${ceiling} bytes)`,
    );
  }
  if (problems.length > 0) throw new ConfigError(`invalid limits: ${problems.join('; ')}`);
}

/** Why `write` breaks `limits` (a Redis-style error text), or undefined when it fits. */
export function writeTooLarge(write: KvClientWrite, limits: SizeLimits): string | undefined {
  const sizes = new WriteSizes(limits);
  const bad = sizes.walk(write);
  if (bad) return bad;
  if (sizes.total > limits.maxCommandBytes) {
    return `ERR command of ${sizes.total} bytes exceeds the limit of ${limits.maxCommandBytes} bytes (max-command-bytes)`;
  }
  return undefined;
}

/**
 * One write's sizes as {@link writeTooLarge} goes through them: an object a check, where three closures a
 * check (every write is checked) made ~240 bytes of garbage.
 */
class WriteSizes {
  /** Bytes of the keys and values met so far. */
  total = 0;

  constructor(private readonly limits: SizeLimits) {}

  private key(k: Uint8Array): string | undefined {
    this.total += k.byteLength;
    return k.byteLength > this.limits.maxKeyBytes
      ? `ERR key of ${k.byteLength} bytes exceeds the limit of ${this.limits.maxKeyBytes} bytes (max-key-bytes)`
      : undefined;
  }

  private value(v: Uint8Array): string | undefined {
    this.total += v.byteLength;
    return v.byteLength > this.limits.maxValueBytes
      ? `ERR value of ${v.byteLength} bytes exceeds the limit of ${this.limits.maxValueBytes} bytes (max-value-bytes)`
      : undefined;
  }

  walk(w: KvClientWrite): string | undefined {
    switch (w.op) {
      case 'set':
      case 'append':
        return this.key(w.key) ?? this.value(w.value);
      case 'setrange':
        // Redis' check and words: the string SETRANGE would make must fit (an empty value writes nothing).
        if (w.value.byteLength > 0 && w.offset + w.value.byteLength > this.limits.maxValueBytes)
          return 'ERR string exceeds maximum allowed size (proto-max-bulk-len)';
        return this.key(w.key) ?? this.value(w.value);
      case 'mset':
        for (const k of w.keys) {
          const bad = this.key(k);
          if (bad) return bad;
        }
        for (const v of w.values) {
          const bad = this.value(v);
          if (bad) return bad;
        }
        return undefined;
      case 'cond':
        return this.key(w.key) ?? (w.action.kind === 'put' ? this.value(w.action.value) : undefined);
      case 'rename':
      case 'copy':
        return this.key(w.key) ?? this.key(w.dest);
      case 'incrbyfloat':
        return this.key(w.key) ?? this.value(w.increment);
      case 'exec':
        for (const inner of w.writes) {
          const bad = this.walk(inner);
          if (bad) return bad;
        }
        return undefined;
      case 'collection':
      case 'read':
        for (const k of w.keys) {
          const bad = this.key(k);
          if (bad) return bad;
        }
        for (const a of w.args ?? []) {
          const bad = this.value(a);
          if (bad) return bad;
        }
        return undefined;
      case 'del':
      case 'delExpired':
        for (const k of w.keys) {
          const bad = this.key(k);
          if (bad) return bad;
        }
        return undefined;
      case 'flush':
      case 'checksum':
        return undefined;
      default:
        return 'key' in w ? this.key(w.key) : undefined;
    }
  }
}

/** The answers refused by {@link limitKv}: the HTTP API tells them apart (413) from command errors. */
const refusals = new WeakSet<KvResponse>();

/** Whether `res` is a write refused for its size by {@link limitKv}. */
export function isTooLarge(res: KvResponse): boolean {
  return refusals.has(res);
}

function refusal(message: string): KvResponse {
  const res: KvResponse = { type: 'error', message };
  refusals.add(res);
  return res;
}

/**
 * `api` with each write checked against `limits` before it goes anywhere: a
 * write too large is answered an error (`-ERR ... (max-value-bytes)` over
 * RESP) and never proposed; the other requests of a pipeline run as before.
 */
export function limitKv(api: KvApi, limits: SizeLimits): KvApi {
  const check = (req: KvClientRequest): KvResponse | undefined => {
    if (req.kind !== 'write') return undefined;
    const bad = writeTooLarge(req.write, limits);
    return bad === undefined ? undefined : refusal(bad);
  };
  return {
    execute: (req) => {
      const refused = check(req);
      return refused ? Promise.resolve(refused) : api.execute(req);
    },
    executeAll: async (reqs) => {
      const refused = reqs.map(check);
      if (refused.every((r) => r === undefined)) return api.executeAll(reqs);
      // The others run as one pipeline still, in their order; a refused write simply has no effect.
      const rest = reqs.filter((_, i) => refused[i] === undefined);
      const answers = rest.length > 0 ? await api.executeAll(rest) : [];
      let k = 0;
      return refused.map((r) => r ?? answers[k++]!);
    },
    status: () => api.status(),
  };
}
