import { CodecError, ErrorCode, type NodeId } from '@cohort/core';
import { type KvCollectionType, type KvRecord, typeCode, typeOfCode } from '@cohort/storage';
import { type KvCommand, decodeCommand, encodeCommand } from './command.js';
import { KvRowPb } from './generated/kv-command.js';
import { KvRequestPb, KvResponsePb, KvTxnResultPb } from './generated/kv-request.js';
import type { KvResult, TxnStepResult } from './result.js';

/** A message's empty bytes field: one array for all (it has no bytes to change). */
const NO_BYTES = new Uint8Array(0);

/**
 * A read served from the state machine after a linearizable ReadIndex round:
 * `get` a bulk or nil; `mget`, `keys` and `revisions` (WATCH: each key's
 * modify revision, 0 when absent) an array; `exists`, `pttl`, `pexpiretime`
 * (-2 absent, -1 no expiry) and `dbsize` an integer; `randomkey` a bulk or nil; `scan` an array whose first
 * value is the key to resume after (nil when done) and the rest the keys
 * (args: empty to start or a 1 byte and the key to resume after, pattern,
 * count, type). `range` answers the records (revisions and version included)
 * of the keys in `[keys[0], keys[1])`, at most `limit`.
 */
export type KvReadOp =
  | 'get'
  | 'mget'
  | 'exists'
  | 'pttl'
  | 'pexpiretime'
  | 'keys'
  | 'scan'
  | 'dbsize'
  | 'randomkey'
  | 'revisions'
  | 'range'
  /** A hash or list read, or TYPE: args[0] names it (see `CollectionRead`), the rest are its arguments; keys its key. */
  | 'collection'
  /** A transaction record's state (keys[0]: the transaction id as UTF-8): a `txn` result. */
  | 'txnRecord';

/** A client request, as served locally or forwarded to the leader. */
export type KvRequest =
  | {
      kind: 'write';
      command: KvCommand;
      /**
       * Set when the command's deadline came from a relative time to live,
       * reckoned from this wall-clock time: the leader moves the deadline by
       * its own clock's difference, so a TTL counts from the leader's time.
       */
      relativeTo?: number;
      /** `revision`: the answer without the key's record (a client write's `answer`, client-request.ts). */
      answer?: 'revision';
    }
  | { kind: 'read'; op: KvReadOp; keys: Uint8Array[]; args?: Uint8Array[]; now: number; limit?: number };

/** A request's outcome: a command result, an array of values, or a failure with a core error code. */
export type KvResponse =
  | KvResult
  | { type: 'array'; values: (Uint8Array | null)[] }
  | { type: 'failure'; code: ErrorCode; message: string; leaderId?: NodeId }
  /**
   * A `range` read: the records in key order, whether the limit cut it short,
   * and the applied index it was served at; a range merged from several
   * partitions also carries each partition's index (`revisions[p]`), since
   * revisions are per partition, and `revision` is the highest of them.
   */
  | { type: 'range'; records: KvRecord[]; more: boolean; revision: number; revisions?: number[] };

/** Encodes a record as a `KvRowPb`. */
export function encodeRecord(r: KvRecord): Uint8Array {
  return KvRowPb.encode({
    key: r.key,
    value: r.value,
    createRevision: BigInt(r.createRevision),
    modifyRevision: BigInt(r.modifyRevision),
    expiresAt: BigInt(r.expiresAt ?? 0),
    version: BigInt(r.version),
    type: typeCode(r.type),
  });
}

/** Decodes a `KvRowPb`; throws `CodecError` on malformed bytes. */
export function decodeRecord(data: Uint8Array): KvRecord {
  let pb: KvRowPb;
  try {
    pb = KvRowPb.decode(data);
  } catch (err) {
    throw new CodecError(`KV record of ${data.length} bytes does not decode: ${(err as Error).message}`);
  }
  const r: KvRecord = {
    key: pb.key,
    value: pb.value,
    createRevision: Number(pb.createRevision),
    modifyRevision: Number(pb.modifyRevision),
    version: Number(pb.version),
  };
  if (pb.expiresAt !== 0n) r.expiresAt = Number(pb.expiresAt);
  if (pb.type !== 0) r.type = rowType(pb.type);
  return r;
}

/** A non-string row's type from its code (not 0); throws `CodecError` on one this build does not know. */
export function rowType(code: number): KvCollectionType {
  let type: KvCollectionType | undefined;
  try {
    type = typeOfCode(code);
  } catch (err) {
    throw new CodecError(`KV row has ${(err as Error).message}; upgrade the node`);
  }
  if (type === undefined) throw new CodecError('KV row type 0 is a string, not a collection');
  return type;
}

const READ_KINDS: Record<KvReadOp, KvRequestPb.Kind> = {
  get: KvRequestPb.Kind.GET,
  mget: KvRequestPb.Kind.MGET,
  exists: KvRequestPb.Kind.EXISTS,
  pttl: KvRequestPb.Kind.PTTL,
  pexpiretime: KvRequestPb.Kind.PEXPIRETIME,
  keys: KvRequestPb.Kind.KEYS,
  scan: KvRequestPb.Kind.SCAN,
  dbsize: KvRequestPb.Kind.DBSIZE,
  randomkey: KvRequestPb.Kind.RANDOMKEY,
  revisions: KvRequestPb.Kind.REVISIONS,
  range: KvRequestPb.Kind.RANGE,
  collection: KvRequestPb.Kind.COLLECTION,
  txnRecord: KvRequestPb.Kind.TXN_RECORD,
};

/** Encodes a request for the `/cohort/kv/1` protocol. */
export function encodeRequest(req: KvRequest): Uint8Array {
  if (req.kind === 'write') {
    return KvRequestPb.encode({
      kind: KvRequestPb.Kind.WRITE,
      command: encodeCommand(req.command),
      keys: [],
      now: BigInt(req.relativeTo ?? 0),
      requests: [],
      args: [],
      limit: 0,
      revisionOnly: req.answer === 'revision',
    });
  }
  return KvRequestPb.encode({
    kind: READ_KINDS[req.op],
    command: NO_BYTES,
    keys: req.keys,
    now: BigInt(req.now),
    requests: [],
    args: req.args ?? [],
    limit: req.limit ?? 0,
    revisionOnly: false,
  });
}

/**
 * Encodes a client's pipeline for the `/cohort/kv/1` protocol: the leader
 * serves the requests in order, as {@link KvService.executeAll} does.
 */
export function encodeBatchRequest(reqs: KvRequest[]): Uint8Array {
  return KvRequestPb.encode({
    kind: KvRequestPb.Kind.BATCH,
    command: NO_BYTES,
    keys: [],
    now: 0n,
    requests: reqs.map(encodeRequest),
    args: [],
    limit: 0,
    revisionOnly: false,
  });
}

/** Decodes a forwarded request or pipeline (an array); throws `CodecError` on malformed bytes. */
export function decodeForwardedRequest(data: Uint8Array): KvRequest | KvRequest[] {
  let pb: KvRequestPb;
  try {
    pb = KvRequestPb.decode(data);
  } catch (err) {
    throw new CodecError(`KV request of ${data.length} bytes does not decode: ${(err as Error).message}`);
  }
  if (pb.kind !== KvRequestPb.Kind.BATCH) return fromPb(pb);
  return pb.requests.map((r) => decodeRequest(r));
}

/** Decodes a forwarded request; throws `CodecError` on malformed bytes. */
export function decodeRequest(data: Uint8Array): KvRequest {
  let pb: KvRequestPb;
  try {
    pb = KvRequestPb.decode(data);
  } catch (err) {
    throw new CodecError(`KV request of ${data.length} bytes does not decode: ${(err as Error).message}`);
  }
  return fromPb(pb);
}

function fromPb(pb: KvRequestPb): KvRequest {
  if (pb.kind === KvRequestPb.Kind.WRITE) {
    const req: KvRequest = { kind: 'write', command: decodeCommand(pb.command) };
    if (pb.now !== 0n) req.relativeTo = Number(pb.now);
    if (pb.revisionOnly) req.answer = 'revision';
    return req;
  }
  const op = (Object.keys(READ_KINDS) as KvReadOp[]).find((k) => READ_KINDS[k] === pb.kind);
  if (op === undefined) throw new CodecError(`KV request has unknown kind ${String(pb.kind)}`);
  const req: KvRequest = { kind: 'read', op, keys: pb.keys, now: Number(pb.now) };
  if (pb.args.length > 0) req.args = pb.args;
  if (op === 'range') req.limit = pb.limit;
  return req;
}

/** The outcomes of a transaction step on the wire, by number (8: locked). */
const OUTCOMES: TxnStepResult['outcome'][] = [
  'prepared',
  'conflict',
  'aborted',
  'committed',
  'pending',
  'missing',
  'resolved',
  'forgotten',
];
const LOCKED = 8;

function emptyStep(): KvTxnResultPb {
  return {
    outcome: 0,
    txn: '',
    recordPartition: 0,
    branch: 0,
    held: false,
    success: [],
    failure: [],
    deadline: 0n,
    write: false,
  };
}

function encodeStep(step: TxnStepResult): Uint8Array {
  const pb = { ...emptyStep(), outcome: OUTCOMES.indexOf(step.outcome) };
  switch (step.outcome) {
    case 'prepared':
      pb.held = step.held;
      pb.success = step.success.map(encodeInner);
      pb.failure = step.failure.map(encodeInner);
      break;
    case 'conflict':
      pb.txn = step.txn;
      pb.recordPartition = step.recordPartition;
      break;
    case 'committed':
      pb.branch = step.branch === 'success' ? 1 : 2;
      break;
    case 'pending':
      pb.deadline = BigInt(step.deadline);
      break;
    default:
      break;
  }
  return KvTxnResultPb.encode(pb);
}

function txnResult(data: Uint8Array): KvTxnResultPb {
  try {
    return KvTxnResultPb.decode(data);
  } catch (err) {
    throw new CodecError(`KV transaction result of ${data.length} bytes does not decode: ${(err as Error).message}`);
  }
}

function decodeStep(data: Uint8Array): TxnStepResult {
  const pb = txnResult(data);
  const outcome = OUTCOMES[pb.outcome];
  switch (outcome) {
    case 'prepared':
      return {
        outcome,
        held: pb.held,
        success: pb.success.map((r) => decodeResult(r)),
        failure: pb.failure.map((r) => decodeResult(r)),
      };
    case 'conflict':
      return { outcome, txn: pb.txn, recordPartition: pb.recordPartition };
    case 'committed':
      if (pb.branch !== 1 && pb.branch !== 2) throw new CodecError(`KV committed transaction has branch ${pb.branch}`);
      return { outcome, branch: pb.branch === 1 ? 'success' : 'failure' };
    case 'pending':
      return { outcome, deadline: Number(pb.deadline) };
    case 'aborted':
    case 'missing':
    case 'resolved':
    case 'forgotten':
      return { outcome };
    default:
      throw new CodecError(`KV transaction result has unknown outcome ${pb.outcome}`);
  }
}

const CODES = new Set<string>(Object.values(ErrorCode));

/** Encodes a response for the `/cohort/kv/1` protocol. */
export function encodeResponse(res: KvResponse): Uint8Array {
  // The answer of most writes, stored with every session's write on every replica: encoded once.
  if (res.type === 'ok') return OK_ENCODED.slice();
  return encodeFields(res);
}

/**
 * {@link encodeResponse} of a response inside another (an EXEC's answers, a pipeline's, a transaction
 * step's), whose bytes the encoder only copies into the outer message: an OK is the shared encoding, not a
 * copy of it (an EXEC of 16 merged `SET`s made 16 copies to store its answer).
 */
function encodeInner(res: KvResponse): Uint8Array {
  return res.type === 'ok' ? OK_ENCODED : encodeFields(res);
}

function encodeFields(res: KvResponse): Uint8Array {
  const pb: KvResponsePb = {
    type: KvResponsePb.Type.OK,
    int: 0n,
    value: NO_BYTES,
    message: '',
    values: [],
    present: [],
    code: '',
    leaderId: '',
    responses: [],
    rows: [],
    succeeded: false,
    more: false,
    txn: NO_BYTES,
  };
  switch (res.type) {
    case 'ok':
      break;
    case 'nil':
      pb.type = KvResponsePb.Type.NIL;
      break;
    case 'int':
      pb.type = KvResponsePb.Type.INT;
      pb.int = res.value;
      break;
    case 'bulk':
      pb.type = KvResponsePb.Type.BULK;
      pb.value = res.value;
      break;
    case 'error':
      pb.type = KvResponsePb.Type.ERROR;
      pb.message = res.message;
      break;
    case 'array':
      pb.type = KvResponsePb.Type.ARRAY;
      pb.values = res.values.map((v) => v ?? NO_BYTES);
      pb.present = res.values.map((v) => v !== null);
      break;
    case 'list':
      pb.type = KvResponsePb.Type.LIST;
      if (res.items === null) pb.present = [false];
      else pb.responses = res.items.map(encodeInner);
      break;
    case 'failure':
      pb.type = KvResponsePb.Type.FAILURE;
      pb.code = res.code;
      pb.message = res.message;
      pb.leaderId = res.leaderId ?? '';
      break;
    case 'cond':
      pb.type = KvResponsePb.Type.COND;
      pb.succeeded = res.succeeded;
      pb.int = BigInt(res.revision);
      pb.rows = res.record ? [encodeRecord(res.record)] : [];
      break;
    case 'range':
      pb.type = KvResponsePb.Type.RANGE;
      pb.more = res.more;
      pb.int = BigInt(res.revision);
      pb.rows = res.records.map(encodeRecord);
      break;
    case 'txn':
      pb.type = KvResponsePb.Type.TXN;
      pb.txn = encodeStep(res.step);
      break;
    case 'locked':
      pb.type = KvResponsePb.Type.LOCKED;
      pb.txn = KvTxnResultPb.encode({
        ...emptyStep(),
        outcome: LOCKED,
        txn: res.txn,
        recordPartition: res.recordPartition,
        deadline: BigInt(res.deadline),
        write: res.write,
      });
      break;
    default: {
      const never: never = res;
      throw new Error(`unknown response ${String(never)}`);
    }
  }
  return KvResponsePb.encode(pb);
}

/** Encodes the answers to a forwarded pipeline, in its order. */
export function encodeBatchResponse(res: KvResponse[]): Uint8Array {
  return KvResponsePb.encode({
    type: KvResponsePb.Type.BATCH,
    int: 0n,
    value: NO_BYTES,
    message: '',
    values: [],
    present: [],
    code: '',
    leaderId: '',
    responses: res.map(encodeInner),
    rows: [],
    succeeded: false,
    more: false,
    txn: NO_BYTES,
  });
}

/**
 * Decodes the answer to a forwarded pipeline of `count` requests: its
 * answers, or one failure standing for all of them (a leader that could not
 * serve the pipeline at all). Throws `CodecError` on malformed bytes or a
 * count that differs.
 */
export function decodeBatchResponse(data: Uint8Array, count: number): KvResponse[] {
  let pb: KvResponsePb;
  try {
    pb = KvResponsePb.decode(data);
  } catch (err) {
    throw new CodecError(`KV response of ${data.length} bytes does not decode: ${(err as Error).message}`);
  }
  if (pb.type !== KvResponsePb.Type.BATCH) {
    const one = decodeResponse(data);
    if (one.type !== 'failure') throw new CodecError(`KV pipeline of ${count} answered one ${one.type}`);
    return Array.from({ length: count }, () => one);
  }
  if (pb.responses.length !== count) {
    throw new CodecError(`KV pipeline of ${count} requests got ${pb.responses.length} answers`);
  }
  return pb.responses.map((r) => decodeResponse(r));
}

/** Decodes one answer inside a list: a command's result, never a failure or an array. */
function decodeResult(data: Uint8Array): KvResult {
  const r = decodeResponse(data);
  if (r.type === 'failure' || r.type === 'array' || r.type === 'range')
    throw new CodecError(`KV list holds a ${r.type} answer`);
  return r;
}

/** Decodes a forwarded response; throws `CodecError` on malformed bytes. */
export function decodeResponse(data: Uint8Array): KvResponse {
  let pb: KvResponsePb;
  try {
    pb = KvResponsePb.decode(data);
  } catch (err) {
    throw new CodecError(`KV response of ${data.length} bytes does not decode: ${(err as Error).message}`);
  }
  switch (pb.type) {
    case KvResponsePb.Type.OK:
      return { type: 'ok' };
    case KvResponsePb.Type.NIL:
      return { type: 'nil' };
    case KvResponsePb.Type.INT:
      return { type: 'int', value: pb.int };
    case KvResponsePb.Type.BULK:
      return { type: 'bulk', value: pb.value };
    case KvResponsePb.Type.ERROR:
      return { type: 'error', message: pb.message };
    case KvResponsePb.Type.ARRAY:
      if (pb.present.length !== pb.values.length) throw new CodecError('KV array response: values and presence differ');
      return { type: 'array', values: pb.values.map((v, i) => (pb.present[i] ? v : null)) };
    case KvResponsePb.Type.LIST:
      if (pb.present.length === 1 && pb.present[0] === false) return { type: 'list', items: null };
      return { type: 'list', items: pb.responses.map((r) => decodeResult(r)) };
    case KvResponsePb.Type.FAILURE: {
      if (!CODES.has(pb.code)) throw new CodecError(`KV failure response has unknown code '${pb.code}'`);
      const res: KvResponse = { type: 'failure', code: pb.code as ErrorCode, message: pb.message };
      if (pb.leaderId !== '') res.leaderId = pb.leaderId;
      return res;
    }
    case KvResponsePb.Type.COND: {
      if (pb.rows.length > 1) throw new CodecError(`KV cond response has ${pb.rows.length} records`);
      const res: KvResponse = { type: 'cond', succeeded: pb.succeeded, revision: Number(pb.int) };
      const row = pb.rows[0];
      if (row !== undefined) res.record = decodeRecord(row);
      return res;
    }
    case KvResponsePb.Type.RANGE:
      return { type: 'range', records: pb.rows.map(decodeRecord), more: pb.more, revision: Number(pb.int) };
    case KvResponsePb.Type.TXN:
      return { type: 'txn', step: decodeStep(pb.txn) };
    case KvResponsePb.Type.LOCKED: {
      const t = txnResult(pb.txn);
      return {
        type: 'locked',
        txn: t.txn,
        recordPartition: t.recordPartition,
        deadline: Number(t.deadline),
        write: t.write,
      };
    }
    default:
      throw new CodecError(`KV response has unknown type ${String(pb.type)}`);
  }
}

/** `{ type: 'ok' }` encoded (a copy is handed out each time: callers may keep or transfer what they get). */
const OK_ENCODED = encodeFields({ type: 'ok' });
