import { CodecError, type Entry } from '@cohort/core';
import { COLLECTION_WRITES, type CollectionWrite, INT64_MAX, INT64_MIN } from './collections.js';
import { KvCommandPb, type KvTxnPb } from './generated/kv-command.js';
import type { ExecRead } from './reads.js';

/** A message's empty bytes field: one array for all (it has no bytes to change). */
const NO_BYTES = new Uint8Array(0);

/** The reads an EXEC may hold, by their number in `KvRequestPb.Kind`. */
const EXEC_READS: Record<ExecRead, number> = {
  get: 1,
  mget: 2,
  exists: 3,
  pttl: 4,
  pexpiretime: 6,
  keys: 7,
  scan: 8,
  dbsize: 9,
  randomkey: 10,
  collection: 12,
};

/** SET's condition: `always`, `nx` (only when absent) or `xx` (only when present). */
export type SetCondition = 'always' | 'nx' | 'xx';

/**
 * EXPIRE's condition (Redis 7): `nx` no expiry yet, `xx` has one, `gt`/`lt`
 * the new deadline is later/earlier (no expiry counts as infinite), `xxlt`
 * both XX and LT.
 */
export type ExpireFlag = 'always' | 'nx' | 'xx' | 'gt' | 'lt' | 'xxlt';

/** How a comparison relates the key's current field to the given one (`=` when absent). */
export type CompareOp = '=' | '!=' | '<' | '>';

/**
 * What a conditional write ({@link KvOp} `cond`) or a transaction compares,
 * as etcd's transactions do: the key is absent or present, or its mod
 * revision, create revision, version (each 0 for an absent key) or value (an
 * absent key has none: every value comparison fails) relates to the given
 * one by `op` (`=` by default; values compare as bytes).
 */
export type KvCompare =
  | { kind: 'always' }
  | { kind: 'absent' }
  | { kind: 'present' }
  | { kind: 'modRevision'; value: number; op?: CompareOp }
  | { kind: 'createRevision'; value: number; op?: CompareOp }
  | { kind: 'version'; value: number; op?: CompareOp }
  | { kind: 'value'; value: Uint8Array; op?: CompareOp };

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
  /** MSET, or MSETNX with `nx` (nothing is set when any key exists; answers 0 or 1). */
  | { op: 'mset'; keys: Uint8Array[]; values: Uint8Array[]; nx?: boolean; now: number }
  /** APPEND: answers the new length; keeps the key's expiry. */
  | { op: 'append'; key: Uint8Array; value: Uint8Array; now: number }
  /** SETRANGE: overwrites from `offset`, zero-padding; answers the new length; keeps the key's expiry. */
  | { op: 'setrange'; key: Uint8Array; offset: number; value: Uint8Array; now: number }
  /** GETDEL: answers the value and deletes the key. */
  | { op: 'getdel'; key: Uint8Array; now: number }
  /** GETEX: answers the value; `persist` drops the expiry, `at` sets `deadline` (one at or before `now` deletes the key). */
  | { op: 'getex'; key: Uint8Array; expiry: 'keep' | 'persist' | 'at'; deadline: number; now: number }
  /** INCRBYFLOAT: `increment` as the client wrote it (a valid float); answers the new value as Redis prints it. */
  | { op: 'incrbyfloat'; key: Uint8Array; increment: Uint8Array; now: number }
  /** RENAME, or RENAMENX with `nx`: moves the value and its expiry. */
  | { op: 'rename'; key: Uint8Array; dest: Uint8Array; nx: boolean; now: number }
  /** COPY: the value and its expiry; `replace` overwrites an existing destination. Answers 0 or 1. */
  | { op: 'copy'; key: Uint8Array; dest: Uint8Array; replace: boolean; now: number }
  /** FLUSHDB: deletes every key of the partition. */
  | { op: 'flush'; now: number }
  /**
   * MULTI/EXEC: `ops` applied in order in this one entry, their answers a
   * list (an error answer does not stop the rest, as in Redis). With
   * `watch`, nothing is applied and the answer is a nil list when any
   * watched key's revision differs from the one seen (0: absent).
   */
  | { op: 'exec'; ops: KvOp[]; watch: WatchedKey[]; now: number }
  /** A read queued in an EXEC (only there), answered from the state as the entry applies. */
  | { op: 'read'; read: ExecRead; keys: Uint8Array[]; args: Uint8Array[]; now: number }
  /** EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT: a deadline at or before `now` deletes the key. Answers 0 or 1. */
  | { op: 'expire'; key: Uint8Array; deadline: number; flag: ExpireFlag; now: number }
  /** PERSIST: removes the key's expiry. Answers 0 or 1. */
  | { op: 'persist'; key: Uint8Array; now: number }
  /** The leader's expiry sweeper: deletes each key only if it is still expired at `now`. */
  | { op: 'delExpired'; keys: Uint8Array[]; now: number }
  /** Records a digest of the partition at this entry's index, for the consistency checker. */
  | { op: 'checksum'; now: number }
  /** Compare-and-swap or conditional delete of one key, decided when the entry applies. Answers a `cond` result. */
  | { op: 'cond'; key: Uint8Array; compare: KvCompare; action: KvCondAction; now: number }
  /** A hash or list write (see `collections.ts`): `keys` its key (LMOVE: source, destination), `args` as the front end checked them. */
  | { op: 'collection'; name: CollectionWrite; keys: Uint8Array[]; args: Uint8Array[]; now: number }
  /**
   * A cross-partition transaction's first round on one participant (see
   * `src/txn/README` in the package docs): lays an intent on every key this
   * partition's part touches, holding the key's state after each branch as
   * computed now; or answers a conflict naming another transaction's intent
   * and lays nothing. On the record partition it also creates the PENDING
   * record (deadline: log time + `timeoutMs`), unless an ABORTED one exists.
   */
  | {
      op: 'txnPrepare';
      txn: string;
      recordPartition: number;
      /** On the record partition: every participant partition (the record lists them). */
      participants: number[];
      compares: TxnCompare[];
      success: KvOp[];
      failure: KvOp[];
      timeoutMs: number;
      now: number;
    }
  /** The commit point, on the record partition: PENDING -> COMMITTED(branch); ABORTED answers aborted. */
  | { op: 'txnCommit'; txn: string; branch: TxnBranch; now: number }
  /**
   * On the record partition: an ABORTED tombstone when there is no record;
   * PENDING -> ABORTED when `coordinator` or past the record's deadline.
   */
  | { op: 'txnAbort'; txn: string; coordinator: boolean; now: number }
  /** On a participant: applies the branch's intents as one write at this entry's revision (`abort`: drops them). */
  | { op: 'txnResolve'; txn: string; branch: TxnBranch | 'abort'; now: number }
  /** On the record partition: drops a committed record once every participant resolved (an aborted one stays as a tombstone). */
  | { op: 'txnForget'; txn: string; now: number };

/** A transaction's branches, etcd style: `success` when every comparison holds, else `failure`. */
export type TxnBranch = 'success' | 'failure';

/** A comparison of a transaction on one key, evaluated by the key's partition as it prepares. */
export interface TxnCompare {
  key: Uint8Array;
  compare: KvCompare;
}

/** A key WATCHed before EXEC, with the revision it had then (0 when absent). */
export interface WatchedKey {
  key: Uint8Array;
  revision: number;
}

/** A KV write as stored in one log entry: an operation and, for exactly-once, its session. */
export type KvCommand = KvOp & { session?: KvSession };

const CONDITIONS: SetCondition[] = ['always', 'nx', 'xx'];
const EXPIRE_FLAGS: ExpireFlag[] = ['always', 'nx', 'xx', 'gt', 'lt', 'xxlt'];

const GETEX_EXPIRY = ['keep', 'persist', 'at'] as const;
const COMPARES: KvCompare['kind'][] = [
  'always',
  'absent',
  'modRevision',
  'version',
  'value',
  'createRevision',
  'present',
];
const COMPARE_OPS: CompareOp[] = ['=', '!=', '<', '>'];

/**
 * `value`'s number on the wire: its position in `names`. Throws `CodecError`
 * for a name the codec does not know (a caller's cast or a JavaScript
 * caller), which would otherwise be written as a number no replica decodes.
 */
function codeOf<T>(names: readonly T[], value: T, field: string): number {
  const code = names.indexOf(value);
  if (code < 0) throw new CodecError(`KV command has unknown ${field} ${JSON.stringify(value)}`);
  return code;
}

/**
 * `n` for an unsigned 64-bit field: a negative number would be written as
 * 2^64 - |n| and decoded as that (a SET's expiry of -5 as "never", a version
 * comparison against -1 as one against 2^64), a fraction or NaN not at all.
 */
function unsigned(n: number, field: string): bigint {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new CodecError(`KV command field ${field} must be an integer from 0 to 2^53 - 1, got ${n}`);
  }
  return BigInt(n);
}

/** `n` for a signed 64-bit field (a deadline: one in the past deletes the key). */
function signed(n: number, field: string): bigint {
  if (!Number.isSafeInteger(n)) {
    throw new CodecError(`KV command field ${field} must be an integer within ±(2^53 - 1), got ${n}`);
  }
  return BigInt(n);
}

/** `n` for an unsigned 32-bit field (a partition number). */
function unsigned32(n: number, field: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw new CodecError(`KV command field ${field} must be an integer from 0 to 2^32 - 1, got ${n}`);
  }
  return n;
}

/** A comparison's fields as the codec carries them (COND's and a transaction's alike). */
function comparePb(c: KvCompare): {
  compare: number;
  compareNumber: bigint;
  compareValue: Uint8Array;
  compareOp: number;
} {
  return {
    compare: codeOf(COMPARES, c.kind, 'comparison'),
    compareNumber: 'value' in c && typeof c.value === 'number' ? unsigned(c.value, `${c.kind} comparison`) : 0n,
    compareValue: c.kind === 'value' ? c.value : NO_BYTES,
    compareOp: 'op' in c && c.op !== undefined ? codeOf(COMPARE_OPS, c.op, 'comparison operator') : 0,
  };
}

/** Encodes a command as the bytes of one log entry (protobuf `KvCommandPb`). */
export function encodeCommand(cmd: KvCommand): Uint8Array {
  // What the decoder refuses, refused here: a read stands only in an EXEC, a session names its client.
  if (cmd.op === 'read') throw new CodecError('KV read command stands only inside an exec command');
  if (cmd.session !== undefined && cmd.session.clientId === '') {
    throw new CodecError('KV command has a session with an empty client id');
  }
  return KvCommandPb.encode(toPb(cmd));
}

function toPb(cmd: KvCommand): KvCommandPb {
  const pb: KvCommandPb = {
    op: KvCommandPb.Op.SET,
    keys: [],
    values: [],
    condition: 0,
    expiresAt: 0n,
    delta: 0n,
    returnOld: false,
    now: unsigned(cmd.now, 'now'),
    expireFlag: 0,
    keepTtl: false,
    deadline: 0n,
    offset: 0n,
    batch: [],
    revisions: [],
    read: 0,
    compare: 0,
    compareNumber: 0n,
    compareValue: NO_BYTES,
    condDelete: false,
    compareOp: 0,
  };
  if (cmd.session) {
    pb.session = {
      clientId: cmd.session.clientId,
      seq: unsigned(cmd.session.seq, 'session.seq'),
      lowWater: unsigned(cmd.session.lowWater, 'session.lowWater'),
    };
  }
  switch (cmd.op) {
    case 'set':
      pb.keys = [cmd.key];
      pb.values = [cmd.value];
      pb.condition = codeOf(CONDITIONS, cmd.condition, 'set condition');
      pb.expiresAt = unsigned(cmd.expiresAt, 'expiresAt');
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
      if (typeof cmd.delta !== 'bigint' || cmd.delta < INT64_MIN || cmd.delta > INT64_MAX) {
        throw new CodecError(`KV command field delta must be a 64-bit integer (a bigint), got ${String(cmd.delta)}`);
      }
      pb.delta = cmd.delta;
      break;
    case 'mset':
      pb.op = KvCommandPb.Op.MSET;
      if (cmd.keys.length !== cmd.values.length) {
        throw new CodecError(`KV mset command has ${cmd.keys.length} keys but ${cmd.values.length} values`);
      }
      pb.keys = cmd.keys;
      pb.values = cmd.values;
      pb.condition = cmd.nx ? 1 : 0;
      break;
    case 'append':
      pb.op = KvCommandPb.Op.APPEND;
      pb.keys = [cmd.key];
      pb.values = [cmd.value];
      break;
    case 'setrange':
      pb.op = KvCommandPb.Op.SETRANGE;
      pb.keys = [cmd.key];
      pb.values = [cmd.value];
      pb.offset = unsigned(cmd.offset, 'offset');
      break;
    case 'getdel':
      pb.op = KvCommandPb.Op.GETDEL;
      pb.keys = [cmd.key];
      break;
    case 'getex':
      pb.op = KvCommandPb.Op.GETEX;
      pb.keys = [cmd.key];
      pb.expireFlag = codeOf(GETEX_EXPIRY, cmd.expiry, 'getex expiry');
      pb.deadline = signed(cmd.deadline, 'deadline');
      break;
    case 'incrbyfloat':
      pb.op = KvCommandPb.Op.INCRBYFLOAT;
      pb.keys = [cmd.key];
      pb.values = [cmd.increment];
      break;
    case 'rename':
      pb.op = KvCommandPb.Op.RENAME;
      pb.keys = [cmd.key, cmd.dest];
      pb.condition = cmd.nx ? 1 : 0;
      break;
    case 'copy':
      pb.op = KvCommandPb.Op.COPY;
      pb.keys = [cmd.key, cmd.dest];
      pb.condition = cmd.replace ? 1 : 0;
      break;
    case 'flush':
      pb.op = KvCommandPb.Op.FLUSH;
      break;
    case 'read':
      pb.op = KvCommandPb.Op.READ;
      pb.read = EXEC_READS[cmd.read];
      if (pb.read === undefined) throw new CodecError(`KV command has unknown read ${JSON.stringify(cmd.read)}`);
      pb.keys = cmd.keys;
      pb.values = cmd.args;
      break;
    case 'exec':
      pb.op = KvCommandPb.Op.EXEC;
      pb.batch = cmd.ops.map((op) => nestedOp(op, 'exec'));
      pb.keys = cmd.watch.map((w) => w.key);
      pb.revisions = cmd.watch.map((w) => unsigned(w.revision, 'watched revision'));
      break;
    case 'expire':
      pb.op = KvCommandPb.Op.EXPIRE;
      pb.keys = [cmd.key];
      pb.deadline = signed(cmd.deadline, 'deadline');
      pb.expireFlag = codeOf(EXPIRE_FLAGS, cmd.flag, 'expire flag');
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
      Object.assign(pb, comparePb(cmd.compare));
      if (cmd.action.kind === 'del') pb.condDelete = true;
      else {
        pb.values = [cmd.action.value];
        pb.expiresAt = unsigned(cmd.action.expiresAt, 'expiresAt');
      }
      break;
    }
    case 'collection':
      pb.op = KvCommandPb.Op.COLLECTION;
      pb.keys = cmd.keys;
      pb.values = [new TextEncoder().encode(cmd.name), ...cmd.args];
      break;
    case 'txnPrepare':
      pb.op = KvCommandPb.Op.TXN_PREPARE;
      pb.txn = {
        ...txnPb(cmd.txn),
        recordPartition: unsigned32(cmd.recordPartition, 'recordPartition'),
        participants: cmd.participants.map((p) => unsigned32(p, 'participants')),
        compares: cmd.compares.map((c) => ({ key: c.key, ...comparePb(c.compare) })),
        success: cmd.success.map((op) => nestedOp(op, 'txnPrepare')),
        failure: cmd.failure.map((op) => nestedOp(op, 'txnPrepare')),
        timeoutMs: unsigned(cmd.timeoutMs, 'timeoutMs'),
      };
      break;
    case 'txnCommit':
      pb.op = KvCommandPb.Op.TXN_COMMIT;
      // A commit names the branch taken: 'abort' is no branch (an abort is its own step).
      pb.txn = { ...txnPb(cmd.txn), branch: codeOf(COMMIT_BRANCHES, cmd.branch, 'commit branch') + 1 };
      break;
    case 'txnAbort':
      pb.op = KvCommandPb.Op.TXN_ABORT;
      pb.txn = { ...txnPb(cmd.txn), coordinator: cmd.coordinator };
      break;
    case 'txnResolve':
      pb.op = KvCommandPb.Op.TXN_RESOLVE;
      pb.txn = { ...txnPb(cmd.txn), branch: codeOf(BRANCHES, cmd.branch, 'branch') };
      break;
    case 'txnForget':
      pb.op = KvCommandPb.Op.TXN_FORGET;
      pb.txn = txnPb(cmd.txn);
      break;
    default: {
      const never: never = cmd;
      throw new Error(`unknown command ${String(never)}`);
    }
  }
  return pb;
}

/** A branch's number on the wire (0: abort, where a step allows it). */
const BRANCHES = ['abort', 'success', 'failure'] as const;
/** The branches a commit may name: {@link BRANCHES} past 'abort' (its number on the wire, less one). */
const COMMIT_BRANCHES = BRANCHES.slice(1);

function txnPb(id: string): KvTxnPb {
  if (id === '') throw new CodecError('KV transaction step has no transaction id');
  return {
    id,
    recordPartition: 0,
    participants: [],
    compares: [],
    success: [],
    failure: [],
    timeoutMs: 0n,
    branch: 0,
    coordinator: false,
  };
}

/** An operation nested in a transaction or an EXEC (never a transaction step or an EXEC itself). */
function nestedOp(op: KvOp, holder: 'exec' | 'txnPrepare'): Uint8Array {
  if (op.op === 'exec' || op.op.startsWith('txn')) {
    throw new CodecError(`KV ${holder} command cannot hold a command of kind ${op.op}`);
  }
  return KvCommandPb.encode(toPb(op));
}

function decodeNested(b: Uint8Array, what: string): KvOp {
  let inner: KvCommandPb;
  try {
    inner = KvCommandPb.decode(b);
  } catch (err) {
    throw new CodecError(`KV ${what} command holds a command that does not decode: ${(err as Error).message}`);
  }
  return decodeOp(inner, true);
}

function decodeCompare(kindNumber: number, n: bigint, value: Uint8Array, opNumber: number, what: string): KvCompare {
  const kind = COMPARES[kindNumber];
  const op = COMPARE_OPS[opNumber];
  if (op === undefined) throw new CodecError(`KV ${what} command has unknown comparison operator ${opNumber}`);
  // '=' is left implicit, as commands written before the operator existed have it.
  const how = op === '=' ? {} : { op };
  switch (kind) {
    case 'always':
    case 'absent':
    case 'present':
      return { kind };
    case 'modRevision':
    case 'createRevision':
    case 'version':
      return { kind, value: Number(n), ...how };
    case 'value':
      return { kind, value, ...how };
    default:
      throw new CodecError(`KV ${what} command has unknown comparison ${kindNumber}`);
  }
}

function decodeTxn(pb: KvCommandPb): KvOp {
  const now = Number(pb.now);
  const t = pb.txn;
  if (t === undefined || t.id === '') throw new CodecError('KV transaction step has no transaction id');
  const branch = BRANCHES[t.branch];
  if (branch === undefined) throw new CodecError(`KV transaction step has unknown branch ${t.branch}`);
  switch (pb.op) {
    case KvCommandPb.Op.TXN_PREPARE:
      return {
        op: 'txnPrepare',
        txn: t.id,
        recordPartition: t.recordPartition,
        participants: t.participants,
        compares: t.compares.map((c) => ({
          key: c.key,
          compare: decodeCompare(c.compare, c.compareNumber, c.compareValue, c.compareOp, 'txnPrepare'),
        })),
        success: t.success.map((b) => decodeNested(b, 'txnPrepare')),
        failure: t.failure.map((b) => decodeNested(b, 'txnPrepare')),
        timeoutMs: Number(t.timeoutMs),
        now,
      };
    case KvCommandPb.Op.TXN_COMMIT:
      if (branch === 'abort') throw new CodecError('KV txnCommit command names no branch');
      return { op: 'txnCommit', txn: t.id, branch, now };
    case KvCommandPb.Op.TXN_ABORT:
      return { op: 'txnAbort', txn: t.id, coordinator: t.coordinator, now };
    case KvCommandPb.Op.TXN_RESOLVE:
      return { op: 'txnResolve', txn: t.id, branch, now };
    case KvCommandPb.Op.TXN_FORGET:
      return { op: 'txnForget', txn: t.id, now };
    default:
      throw new CodecError(`KV command has unknown op ${String(pb.op)}`);
  }
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

function oneValue(pb: KvCommandPb, what: string): Uint8Array {
  const value = pb.values[0];
  if (pb.values.length !== 1 || value === undefined) throw new CodecError(`KV ${what} command needs exactly one value`);
  return value;
}

function decodeOp(pb: KvCommandPb, nested = false): KvOp {
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
      return pb.condition === 1
        ? { op: 'mset', keys: pb.keys, values: pb.values, nx: true, now }
        : { op: 'mset', keys: pb.keys, values: pb.values, now };
    case KvCommandPb.Op.APPEND:
      return { op: 'append', key: one('append'), value: oneValue(pb, 'append'), now };
    case KvCommandPb.Op.SETRANGE:
      return { op: 'setrange', key: one('setrange'), offset: Number(pb.offset), value: oneValue(pb, 'setrange'), now };
    case KvCommandPb.Op.GETDEL:
      return { op: 'getdel', key: one('getdel'), now };
    case KvCommandPb.Op.GETEX: {
      const expiry = GETEX_EXPIRY[pb.expireFlag];
      if (expiry === undefined) throw new CodecError(`KV getex command has unknown expiry ${pb.expireFlag}`);
      return { op: 'getex', key: one('getex'), expiry, deadline: Number(pb.deadline), now };
    }
    case KvCommandPb.Op.INCRBYFLOAT:
      return { op: 'incrbyfloat', key: one('incrbyfloat'), increment: oneValue(pb, 'incrbyfloat'), now };
    case KvCommandPb.Op.RENAME:
    case KvCommandPb.Op.COPY: {
      const [key, dest] = pb.keys;
      if (pb.keys.length !== 2 || key === undefined || dest === undefined) {
        throw new CodecError(`KV rename or copy command needs two keys, got ${pb.keys.length}`);
      }
      return pb.op === KvCommandPb.Op.RENAME
        ? { op: 'rename', key, dest, nx: pb.condition === 1, now }
        : { op: 'copy', key, dest, replace: pb.condition === 1, now };
    }
    case KvCommandPb.Op.FLUSH:
      return { op: 'flush', now };
    case KvCommandPb.Op.READ: {
      if (!nested) throw new CodecError('KV read command outside an exec command');
      const read = (Object.keys(EXEC_READS) as ExecRead[]).find((r) => EXEC_READS[r] === pb.read);
      if (read === undefined) throw new CodecError(`KV read command has unknown read ${pb.read}`);
      return { op: 'read', read, keys: pb.keys, args: pb.values, now };
    }
    case KvCommandPb.Op.EXEC: {
      if (nested) throw new CodecError('KV exec command holds an exec command');
      if (pb.keys.length !== pb.revisions.length) {
        throw new CodecError(`KV exec command watches ${pb.keys.length} keys with ${pb.revisions.length} revisions`);
      }
      const ops = pb.batch.map((b) => {
        let inner: KvCommandPb;
        try {
          inner = KvCommandPb.decode(b);
        } catch (err) {
          throw new CodecError(`KV exec command holds a command that does not decode: ${(err as Error).message}`);
        }
        return decodeOp(inner, true);
      });
      const watch = pb.keys.map((key, i) => ({ key, revision: Number(pb.revisions[i]) }));
      return { op: 'exec', ops, watch, now };
    }
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
      const compare = decodeCompare(pb.compare, pb.compareNumber, pb.compareValue, pb.compareOp, 'cond');
      let action: KvCondAction;
      if (pb.condDelete) action = { kind: 'del' };
      else {
        const value = pb.values[0];
        if (value === undefined || pb.values.length !== 1) throw new CodecError('KV cond put needs exactly one value');
        action = { kind: 'put', value, expiresAt: Number(pb.expiresAt) };
      }
      return { op: 'cond', key: one('cond'), compare, action, now };
    }
    case KvCommandPb.Op.COLLECTION: {
      const [first, ...args] = pb.values;
      const name = COLLECTION_WRITES.find((w) => first !== undefined && w === Buffer.from(first).toString('latin1'));
      if (name === undefined) throw new CodecError('KV collection command names no known hash or list write');
      if (name === 'lmpop' ? pb.keys.length === 0 : pb.keys.length !== (name === 'lmove' ? 2 : 1)) {
        throw new CodecError(`KV ${name} command has ${pb.keys.length} keys`);
      }
      return { op: 'collection', name, keys: pb.keys, args, now };
    }
    case KvCommandPb.Op.TXN_PREPARE:
    case KvCommandPb.Op.TXN_COMMIT:
    case KvCommandPb.Op.TXN_ABORT:
    case KvCommandPb.Op.TXN_RESOLVE:
    case KvCommandPb.Op.TXN_FORGET:
      if (nested) throw new CodecError('KV transaction step nested in another command');
      return decodeTxn(pb);
    default:
      throw new CodecError(`KV command has unknown op ${String(pb.op)}`);
  }
}

/**
 * The command a log entry carries; undefined for an entry without one (a no-op, a membership change) or
 * whose bytes are no command (its apply fails it alike on every replica, changing nothing).
 */
export function entryCommand(e: Entry): KvCommand | undefined {
  if (e.type !== 'normal' || e.data.length === 0) return undefined;
  try {
    return decodeCommand(e.data);
  } catch {
    return undefined;
  }
}
