import { CodecError, type LogIndex } from '@cohort/core';
import { type KvCommand, decodeCommand } from './command.js';
import { KvSnapshotPb } from './generated/kv-command.js';
import type { KvResult } from './result.js';

/** The snapshot format this code writes; restore refuses others loudly. */
export const KV_SNAPSHOT_VERSION = 1;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INTEGER = /^-?(0|[1-9][0-9]*)$/;

interface Item {
  value: Uint8Array;
  /** Wall-clock milliseconds after which the key is gone; 0 for never. */
  expiresAt: number;
}

/** Keys are bytes; a latin1 string maps each byte to one code unit, so it is a lossless map key. */
function keyOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

function bytesOf(key: string): Uint8Array {
  return new Uint8Array(Buffer.from(key, 'latin1'));
}

/**
 * The replicated key-value state machine: applies encoded commands in log
 * order, deterministically (time comes from the command, never the clock),
 * and snapshots to a versioned, sorted, byte-identical image. Memory-backed:
 * a restart rebuilds it from the last snapshot and the log.
 */
export class KvStateMachine {
  private readonly items = new Map<string, Item>();
  private applied: LogIndex = 0;

  /** The index of the last entry applied. */
  get appliedIndex(): LogIndex {
    return this.applied;
  }

  /** Number of keys held, including expired keys not yet removed. */
  get size(): number {
    return this.items.size;
  }

  /** Applies the entry at `index` holding an encoded command; throws `CodecError` on bytes that are not one. */
  apply(index: LogIndex, data: Uint8Array): KvResult {
    const cmd = decodeCommand(data);
    const result = this.applyCommand(cmd);
    this.applied = index;
    return result;
  }

  /** Records that `index` was applied without a command (a leader's no-op or a membership change). */
  skip(index: LogIndex): void {
    this.applied = index;
  }

  /** The value of `key` if present and not expired at `now` (wall-clock ms). */
  get(key: Uint8Array, now: number): Uint8Array | undefined {
    return this.live(keyOf(key), now)?.value;
  }

  /** Whether `key` is present and not expired at `now`. */
  has(key: Uint8Array, now: number): boolean {
    return this.live(keyOf(key), now) !== undefined;
  }

  /** The remaining time to live of `key` in ms: -2 when absent, -1 when it never expires (Redis' PTTL). */
  ttl(key: Uint8Array, now: number): number {
    const item = this.live(keyOf(key), now);
    if (item === undefined) return -2;
    return item.expiresAt === 0 ? -1 : item.expiresAt - now;
  }

  /** A versioned image of the whole state, sorted by key so replicas produce identical bytes. */
  snapshot(): Uint8Array {
    const keys = [...this.items.keys()].sort();
    const pb: KvSnapshotPb = {
      version: KV_SNAPSHOT_VERSION,
      appliedIndex: BigInt(this.applied),
      keys: [],
      values: [],
      expiresAt: [],
    };
    for (const k of keys) {
      const item = this.items.get(k)!;
      pb.keys.push(bytesOf(k));
      pb.values.push(item.value);
      pb.expiresAt.push(BigInt(item.expiresAt));
    }
    return KvSnapshotPb.encode(pb);
  }

  /** Replaces the whole state by a snapshot's; throws `CodecError` on an unknown version or a malformed image. */
  restore(data: Uint8Array): void {
    let pb: KvSnapshotPb;
    try {
      pb = KvSnapshotPb.decode(data);
    } catch (err) {
      throw new CodecError(`KV snapshot of ${data.length} bytes does not decode: ${(err as Error).message}`);
    }
    if (pb.version !== KV_SNAPSHOT_VERSION) {
      throw new CodecError(
        `KV snapshot has version ${pb.version}; this build reads version ${KV_SNAPSHOT_VERSION} only (upgrade the node)`,
      );
    }
    if (pb.values.length !== pb.keys.length || pb.expiresAt.length !== pb.keys.length) {
      throw new CodecError(
        `KV snapshot is inconsistent: ${pb.keys.length} keys, ${pb.values.length} values, ${pb.expiresAt.length} expiries`,
      );
    }
    this.items.clear();
    pb.keys.forEach((k, i) => {
      this.items.set(keyOf(k), { value: pb.values[i]!, expiresAt: Number(pb.expiresAt[i]!) });
    });
    this.applied = Number(pb.appliedIndex);
  }

  private live(key: string, now: number): Item | undefined {
    const item = this.items.get(key);
    if (item === undefined) return undefined;
    return item.expiresAt !== 0 && item.expiresAt <= now ? undefined : item;
  }

  /** Looks a key up at the command's time, dropping it if expired so the state stays the same on every replica. */
  private current(key: string, now: number): Item | undefined {
    const item = this.live(key, now);
    if (item === undefined) this.items.delete(key);
    return item;
  }

  private applyCommand(cmd: KvCommand): KvResult {
    switch (cmd.op) {
      case 'set': {
        const k = keyOf(cmd.key);
        const old = this.current(k, cmd.now);
        if ((cmd.condition === 'nx' && old) || (cmd.condition === 'xx' && !old)) return { type: 'nil' };
        this.items.set(k, { value: cmd.value, expiresAt: cmd.expiresAt });
        if (cmd.returnOld) return old ? { type: 'bulk', value: old.value } : { type: 'nil' };
        return { type: 'ok' };
      }
      case 'del': {
        let n = 0n;
        for (const key of cmd.keys) {
          const k = keyOf(key);
          if (this.current(k, cmd.now)) {
            this.items.delete(k);
            n++;
          }
        }
        return { type: 'int', value: n };
      }
      case 'incr': {
        const k = keyOf(cmd.key);
        const old = this.current(k, cmd.now);
        const text = old ? Buffer.from(old.value).toString('latin1') : '0';
        if (!INTEGER.test(text) || text.length > 20) {
          return { type: 'error', message: 'ERR value is not an integer or out of range' };
        }
        const next = BigInt(text) + cmd.delta;
        if (BigInt(text) < INT64_MIN || BigInt(text) > INT64_MAX) {
          return { type: 'error', message: 'ERR value is not an integer or out of range' };
        }
        if (next < INT64_MIN || next > INT64_MAX) {
          return { type: 'error', message: 'ERR increment or decrement would overflow' };
        }
        this.items.set(k, { value: new TextEncoder().encode(next.toString()), expiresAt: old?.expiresAt ?? 0 });
        return { type: 'int', value: next };
      }
      case 'mset':
        cmd.keys.forEach((key, i) => {
          this.items.set(keyOf(key), { value: cmd.values[i]!, expiresAt: 0 });
        });
        return { type: 'ok' };
      default: {
        const never: never = cmd;
        throw new Error(`unknown command ${String(never)}`);
      }
    }
  }
}
