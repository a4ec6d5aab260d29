import { CodecError } from '@cohort/core';
import { type KvCollectionType, type KvRecord, typeCode } from '@cohort/storage';
import type { TxnBranch } from '../command.js';
import { KvTxnIntentPb, KvTxnRecordPb, type KvTxnValuePb } from '../generated/kv-command.js';
import { rowType } from '../request.js';

/** A key's state as a transaction branch leaves it. */
export type TxnValue =
  | { kind: 'unchanged' }
  | { kind: 'deleted' }
  | { kind: 'put'; value: Uint8Array; type?: KvCollectionType; expiresAt?: number };

/** A write intent: the transaction holding the key, where its record is, and the key after each branch. */
export interface Intent {
  txn: string;
  recordPartition: number;
  /** Log time (ms) past which a reader finding no record aborts the transaction. */
  deadline: number;
  success: TxnValue;
  failure: TxnValue;
}

/** A transaction record's state. */
export type TxnState = { state: 'pending' } | { state: 'committed'; branch: TxnBranch } | { state: 'aborted' };

/** A transaction record: its state, participants, and the deadline (log time) past which anyone may abort it. */
export type TxnRecord = TxnState & { participants: number[]; deadline: number };

/** A key as a map id (its bytes as latin1). */
export function rowId(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/** Whether an intent changes its key in some branch (else it only holds it for reading). */
export function writes(intent: Intent): boolean {
  return intent.success.kind !== 'unchanged' || intent.failure.kind !== 'unchanged';
}

/** The state `rec` (undefined: absent) has after a branch that wrote it. */
export function branchValue(rec: KvRecord | undefined): TxnValue {
  if (rec === undefined) return { kind: 'deleted' };
  const v: TxnValue = { kind: 'put', value: rec.value };
  if (rec.type !== undefined) v.type = rec.type;
  if (rec.expiresAt !== undefined) v.expiresAt = rec.expiresAt;
  return v;
}

function valuePb(v: TxnValue): KvTxnValuePb {
  if (v.kind === 'unchanged') return { kind: 0, value: new Uint8Array(), type: 0, expiresAt: 0n };
  if (v.kind === 'deleted') return { kind: 1, value: new Uint8Array(), type: 0, expiresAt: 0n };
  return { kind: 2, value: v.value, type: typeCode(v.type), expiresAt: BigInt(v.expiresAt ?? 0) };
}

function fromValuePb(pb: KvTxnValuePb | undefined): TxnValue {
  if (pb === undefined || pb.kind === 0) return { kind: 'unchanged' };
  if (pb.kind === 1) return { kind: 'deleted' };
  if (pb.kind !== 2) throw new CodecError(`KV intent has unknown value kind ${pb.kind}`);
  const v: TxnValue = { kind: 'put', value: pb.value };
  if (pb.type !== 0) v.type = rowType(pb.type);
  if (pb.expiresAt !== 0n) v.expiresAt = Number(pb.expiresAt);
  return v;
}

export function encodeIntent(i: Intent): Uint8Array {
  return KvTxnIntentPb.encode({
    txn: i.txn,
    recordPartition: i.recordPartition,
    deadline: BigInt(i.deadline),
    success: valuePb(i.success),
    failure: valuePb(i.failure),
  });
}

/** Decodes an intent row; throws `CodecError` on bytes that are not one. */
export function decodeIntent(data: Uint8Array): Intent {
  let pb: KvTxnIntentPb;
  try {
    pb = KvTxnIntentPb.decode(data);
  } catch (err) {
    throw new CodecError(`KV intent of ${data.length} bytes does not decode: ${(err as Error).message}`);
  }
  return {
    txn: pb.txn,
    recordPartition: pb.recordPartition,
    deadline: Number(pb.deadline),
    success: fromValuePb(pb.success),
    failure: fromValuePb(pb.failure),
  };
}

const STATES = ['pending', 'committed', 'aborted'] as const;

export function encodeRecord(r: TxnRecord): Uint8Array {
  return KvTxnRecordPb.encode({
    state: STATES.indexOf(r.state),
    branch: r.state === 'committed' ? (r.branch === 'success' ? 1 : 2) : 0,
    participants: r.participants,
    deadline: BigInt(r.deadline),
  });
}

/** Decodes a transaction record row; throws `CodecError` on bytes that are not one. */
export function decodeRecord(data: Uint8Array): TxnRecord {
  let pb: KvTxnRecordPb;
  try {
    pb = KvTxnRecordPb.decode(data);
  } catch (err) {
    throw new CodecError(`KV transaction record of ${data.length} bytes does not decode: ${(err as Error).message}`);
  }
  const base = { participants: pb.participants, deadline: Number(pb.deadline) };
  const state = STATES[pb.state];
  if (state === 'committed') {
    if (pb.branch !== 1 && pb.branch !== 2) throw new CodecError(`KV transaction record has branch ${pb.branch}`);
    return { ...base, state, branch: pb.branch === 1 ? 'success' : 'failure' };
  }
  if (state === undefined) throw new CodecError(`KV transaction record has unknown state ${pb.state}`);
  return { ...base, state };
}
