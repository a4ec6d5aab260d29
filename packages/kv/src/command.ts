import { CodecError } from '@cohort/core';
import { KvCommandPb } from './generated/kv-command.js';

/** SET's condition: `always`, `nx` (only when absent) or `xx` (only when present). */
export type SetCondition = 'always' | 'nx' | 'xx';

/**
 * One replicated KV write. Reads never go through the log: they are served
 * from the state machine after a ReadIndex round.
 */
export type KvCommand =
  | {
      op: 'set';
      key: Uint8Array;
      value: Uint8Array;
      condition: SetCondition;
      /** Absolute expiry in the proposer's wall-clock milliseconds; 0 for none. */
      expiresAt: number;
      /** Return the previous value (SET ... GET). */
      returnOld: boolean;
      /** The proposer's wall-clock milliseconds, so every replica decides expiry alike. */
      now: number;
    }
  | { op: 'del'; keys: Uint8Array[]; now: number }
  | { op: 'incr'; key: Uint8Array; delta: bigint; now: number }
  | { op: 'mset'; keys: Uint8Array[]; values: Uint8Array[]; now: number };

const CONDITIONS: SetCondition[] = ['always', 'nx', 'xx'];

/** Encodes a command as the bytes of one log entry (protobuf `KvCommandPb`). */
export function encodeCommand(cmd: KvCommand): Uint8Array {
  const pb: KvCommandPb = {
    op: KvCommandPb.Op.SET,
    keys: [],
    values: [],
    condition: 0,
    expiresAt: 0n,
    delta: 0n,
    returnOld: false,
    now: BigInt(cmd.now),
  };
  switch (cmd.op) {
    case 'set':
      pb.keys = [cmd.key];
      pb.values = [cmd.value];
      pb.condition = CONDITIONS.indexOf(cmd.condition);
      pb.expiresAt = BigInt(cmd.expiresAt);
      pb.returnOld = cmd.returnOld;
      break;
    case 'del':
      pb.op = KvCommandPb.Op.DEL;
      pb.keys = cmd.keys;
      break;
    case 'incr':
      pb.op = KvCommandPb.Op.INCR;
      pb.keys = [cmd.key];
      pb.delta = cmd.delta;
      break;
    case 'mset':
      pb.op = KvCommandPb.Op.MSET;
      pb.keys = cmd.keys;
      pb.values = cmd.values;
      break;
    default: {
      const never: never = cmd;
      throw new Error(`unknown command ${String(never)}`);
    }
  }
  return KvCommandPb.encode(pb);
}

/** Decodes a log entry's bytes; throws `CodecError` when they are not a valid command. */
export function decodeCommand(data: Uint8Array): KvCommand {
  let pb: KvCommandPb;
  try {
    pb = KvCommandPb.decode(data);
  } catch (err) {
    throw new CodecError(`KV command of ${data.length} bytes does not decode: ${(err as Error).message}`);
  }
  const now = Number(pb.now);
  const one = (what: string): Uint8Array => {
    const key = pb.keys[0];
    if (pb.keys.length !== 1 || key === undefined) {
      throw new CodecError(`KV ${what} command needs exactly one key, got ${pb.keys.length}`);
    }
    return key;
  };
  switch (pb.op) {
    case KvCommandPb.Op.SET: {
      const value = pb.values[0];
      const condition = CONDITIONS[pb.condition];
      if (value === undefined || pb.values.length !== 1) throw new CodecError('KV set command needs exactly one value');
      if (condition === undefined) throw new CodecError(`KV set command has unknown condition ${pb.condition}`);
      return {
        op: 'set',
        key: one('set'),
        value,
        condition,
        expiresAt: Number(pb.expiresAt),
        returnOld: pb.returnOld,
        now,
      };
    }
    case KvCommandPb.Op.DEL:
      return { op: 'del', keys: pb.keys, now };
    case KvCommandPb.Op.INCR:
      return { op: 'incr', key: one('incr'), delta: pb.delta, now };
    case KvCommandPb.Op.MSET:
      if (pb.keys.length !== pb.values.length) {
        throw new CodecError(`KV mset command has ${pb.keys.length} keys but ${pb.values.length} values`);
      }
      return { op: 'mset', keys: pb.keys, values: pb.values, now };
    default:
      throw new CodecError(`KV command has unknown op ${String(pb.op)}`);
  }
}
