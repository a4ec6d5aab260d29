import { CodecError } from '@cohort/core';
import { KvCommandPb } from './generated/kv-command.js';

/** SET's condition: `always`, `nx` (only when absent) or `xx` (only when present). */
export type SetCondition = 'always' | 'nx' | 'xx';

/** EXPIRE's condition (Redis 7): `nx` no expiry yet, `xx` has one, `gt`/`lt` the new deadline is later/earlier. */
export type ExpireFlag = 'always' | 'nx' | 'xx' | 'gt' | 'lt';

/**
 * What a conditional write ({@link KvOp} `cond`) compares, as etcd's
 * transactions do: the key is absent, or its mod revision, version or value
 * equals the given one.
 */
export type KvCompare =
  | { kind: 'always' }
  | { kind: 'absent' }
  | { kind: 'modRevision'; value: number }
  | { kind: 'version'; value: number }
  | { kind: 'value'; value: Uint8Array };

/** What a conditional write does when its comparison holds: put a value (expiry 0 for none) or delete the key. */
export type KvCondAction = { kind: 'put'; value: Uint8Array; expiresAt: number } | { kind: 'del' };

/**
 * A write's place in its client's session: a retried `(clientId, seq)` returns
 * the stored response instead of applying again; every sequence number at or
 * below `lowWater` was acknowledged to the client, so its response may go.
 */
export interface KvSession {
  clientId: string;
  seq: number;
  lowWater: number;
}

/**
 * One replicated KV write. Reads never go through the log: they are served
 * from the state machine after a ReadIndex round. `now` is the log time the
 * leader stamped; every replica decides expiry by it alike.
 */
export type KvOp =
  | {
      op: 'set';
      key: Uint8Array;
      value: Uint8Array;
      condition: SetCondition;
      /** Absolute expiry in log-time milliseconds; 0 for none. */
      expiresAt: number;
      /** Return the previous value (SET ... GET). */
      returnOld: boolean;
      /** Keep the key's current expiry (SET ... KEEPTTL); `expiresAt` is then ignored. @default false */
      keepTtl?: boolean;
      now: number;
    }
  | { op: 'del'; keys: Uint8Array[]; now: number }
  | { op: 'incr'; key: Uint8Array; delta: bigint; now: number }
  | { op: 'mset'; keys: Uint8Array[]; values: Uint8Array[]; now: number }
  /** EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT: a deadline at or before `now` deletes the key. Answers 0 or 1. */
  | { op: 'expire'; key: Uint8Array; deadline: number; flag: ExpireFlag; now: number }
  /** PERSIST: removes the key's expiry. Answers 0 or 1. */
  | { op: 'persist'; key: Uint8Array; now: number }
  /** The leader's expiry sweeper: deletes each key only if it is still expired at `now`. */
  | { op: 'delExpired'; keys: Uint8Array[]; now: number }
  /** Records a digest of the partition at this entry's index, for the consistency checker. */
  | { op: 'checksum'; now: number }
  /** Compare-and-swap or conditional delete of one key, decided when the entry applies. Answers a `cond` result. */
  | { op: 'cond'; key: Uint8Array; compare: KvCompare; action: KvCondAction; now: number };

/** A KV write as stored in one log entry: an operation and, for exactly-once, its session. */
export type KvCommand = KvOp & { session?: KvSession };

const CONDITIONS: SetCondition[] = ['always', 'nx', 'xx'];
const EXPIRE_FLAGS: ExpireFlag[] = ['always', 'nx', 'xx', 'gt', 'lt'];
const COMPARES: KvCompare['kind'][] = ['always', 'absent', 'modRevision', 'version', 'value'];

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
    expireFlag: 0,
    keepTtl: false,
    deadline: 0n,
    compare: 0,
    compareNumber: 0n,
    compareValue: new Uint8Array(),
    condDelete: false,
  };
  if (cmd.session) {
    pb.session = {
      clientId: cmd.session.clientId,
      seq: BigInt(cmd.session.seq),
      lowWater: BigInt(cmd.session.lowWater),
    };
  }
  switch (cmd.op) {
    case 'set':
      pb.keys = [cmd.key];
      pb.values = [cmd.value];
      pb.condition = CONDITIONS.indexOf(cmd.condition);
      pb.expiresAt = BigInt(cmd.expiresAt);
      pb.returnOld = cmd.returnOld;
      pb.keepTtl = cmd.keepTtl ?? false;
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
    case 'expire':
      pb.op = KvCommandPb.Op.EXPIRE;
      pb.keys = [cmd.key];
      pb.deadline = BigInt(cmd.deadline);
      pb.expireFlag = EXPIRE_FLAGS.indexOf(cmd.flag);
      break;
    case 'persist':
      pb.op = KvCommandPb.Op.PERSIST;
      pb.keys = [cmd.key];
      break;
    case 'delExpired':
      pb.op = KvCommandPb.Op.DEL_EXPIRED;
      pb.keys = cmd.keys;
      break;
    case 'checksum':
      pb.op = KvCommandPb.Op.CHECKSUM;
      break;
    case 'cond': {
      pb.op = KvCommandPb.Op.COND;
      pb.keys = [cmd.key];
      const c = cmd.compare;
      pb.compare = COMPARES.indexOf(c.kind);
      if (c.kind === 'modRevision' || c.kind === 'version') pb.compareNumber = BigInt(c.value);
      if (c.kind === 'value') pb.compareValue = c.value;
      if (cmd.action.kind === 'del') pb.condDelete = true;
      else {
        pb.values = [cmd.action.value];
        pb.expiresAt = BigInt(cmd.action.expiresAt);
      }
      break;
    }
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
  const op = decodeOp(pb);
  if (pb.session === undefined) return op;
  if (pb.session.clientId === '') throw new CodecError('KV command has a session with an empty client id');
  return {
    ...op,
    session: { clientId: pb.session.clientId, seq: Number(pb.session.seq), lowWater: Number(pb.session.lowWater) },
  };
}

function decodeOp(pb: KvCommandPb): KvOp {
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
      const set: KvOp = {
        op: 'set',
        key: one('set'),
        value,
        condition,
        expiresAt: Number(pb.expiresAt),
        returnOld: pb.returnOld,
        now,
      };
      if (pb.keepTtl) set.keepTtl = true;
      return set;
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
    case KvCommandPb.Op.EXPIRE: {
      const flag = EXPIRE_FLAGS[pb.expireFlag];
      if (flag === undefined) throw new CodecError(`KV expire command has unknown flag ${pb.expireFlag}`);
      return { op: 'expire', key: one('expire'), deadline: Number(pb.deadline), flag, now };
    }
    case KvCommandPb.Op.PERSIST:
      return { op: 'persist', key: one('persist'), now };
    case KvCommandPb.Op.DEL_EXPIRED:
      return { op: 'delExpired', keys: pb.keys, now };
    case KvCommandPb.Op.CHECKSUM:
      return { op: 'checksum', now };
    case KvCommandPb.Op.COND: {
      const kind = COMPARES[pb.compare];
      let compare: KvCompare;
      switch (kind) {
        case 'always':
        case 'absent':
          compare = { kind };
          break;
        case 'modRevision':
        case 'version':
          compare = { kind, value: Number(pb.compareNumber) };
          break;
        case 'value':
          compare = { kind, value: pb.compareValue };
          break;
        default:
          throw new CodecError(`KV cond command has unknown comparison ${pb.compare}`);
      }
      let action: KvCondAction;
      if (pb.condDelete) action = { kind: 'del' };
      else {
        const value = pb.values[0];
        if (value === undefined || pb.values.length !== 1) throw new CodecError('KV cond put needs exactly one value');
        action = { kind: 'put', value, expiresAt: Number(pb.expiresAt) };
      }
      return { op: 'cond', key: one('cond'), compare, action, now };
    }
    default:
      throw new CodecError(`KV command has unknown op ${String(pb.op)}`);
  }
}
