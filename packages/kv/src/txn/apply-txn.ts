import type { PartitionKv } from '@cohort/storage';
import { applyOp, compareHolds, isExpired } from '../apply-op.js';
import type { KvOp } from '../command.js';
import type { KvResult } from '../result.js';
import { clientView } from './client-kv.js';
import {
  type Intent,
  type TxnRecord,
  type TxnValue,
  branchValue,
  decodeIntent,
  decodeRecord,
  encodeIntent,
  encodeRecord,
  rowId,
  writes,
} from './intent-codec.js';
import {
  INTENTS_END,
  INTENTS_START,
  RESERVED_MESSAGE,
  intentKey,
  isReservedKey,
  lockedKey,
  markerKey,
  recordKey,
} from './keyspace.js';
import { opKeys } from './op-keys.js';
import { OverlayKv } from './overlay-kv.js';

/**
 * The number of intent rows of a partition, counted once and then kept by
 * the steps that lay and drop them, so a partition with none (the usual
 * case) pays no lookup per command. Reset whenever the rows change
 * otherwise (a snapshot installed, a batch rolled back).
 */
export class IntentCount {
  private n: number | undefined;

  of(kv: PartitionKv): number {
    if (this.n === undefined) {
      let n = 0;
      let start = INTENTS_START;
      for (;;) {
        const page = kv.scan({ start, end: INTENTS_END, limit: 1024 });
        n += page.length;
        const last = page.at(-1);
        if (last === undefined || page.length < 1024) break;
        start = Buffer.concat([last.key, new Uint8Array(1)]);
      }
      this.n = n;
    }
    return this.n;
  }

  add(d: number): void {
    if (this.n !== undefined) this.n += d;
  }

  reset(): void {
    this.n = undefined;
  }
}

/** What transaction steps need beside the partition. */
export interface TxnContext {
  intents: IntentCount;
  /** Log time (ms) aborted records and abort markers are kept, past any retry of a step. */
  retentionMs: number;
}

const views = new WeakMap<PartitionKv, PartitionKv>();

/** The client view of `kv` (one per partition object). */
export function viewOf(kv: PartitionKv): PartitionKv {
  let v = views.get(kv);
  if (v === undefined) {
    v = clientView(kv);
    views.set(kv, v);
  }
  return v;
}

const ABORTED: KvResult = { type: 'txn', step: { outcome: 'aborted' } };
const RESERVED: KvResult = { type: 'error', message: RESERVED_MESSAGE };

/** Every intent of the partition, in key order (few: those of transactions in flight). */
export function* intents(kv: PartitionKv): Generator<{ key: Uint8Array; intent: Intent }> {
  let start = INTENTS_START;
  for (;;) {
    const page = kv.scan({ start, end: INTENTS_END, limit: 256 });
    for (const r of page) yield { key: lockedKey(r.key).slice(), intent: decodeIntent(r.value) };
    const last = page.at(-1);
    if (last === undefined || page.length < 256) return;
    start = Buffer.concat([last.key, new Uint8Array(1)]);
  }
}

/** The intent on `key`, if any. */
export function intentOn(kv: PartitionKv, key: Uint8Array): Intent | undefined {
  const row = kv.get(intentKey(key));
  return row && decodeIntent(row.value);
}

/**
 * The lock a command meets: the first intent on `keys` (on any key for
 * `all`) of a transaction not in `pass`, counting only intents that write
 * unless `writer` (a write waits for any intent, a read only for one that
 * changes what it reads).
 */
export function lockOf(
  kv: PartitionKv,
  keys: Uint8Array[] | 'all',
  writer: boolean,
  count: IntentCount,
  pass?: ReadonlySet<string>,
): Extract<KvResult, { type: 'locked' }> | undefined {
  if (count.of(kv) === 0) return undefined;
  const meets = (i: Intent): boolean => (writer || writes(i)) && !pass?.has(i.txn);
  const locked = (i: Intent): Extract<KvResult, { type: 'locked' }> => ({
    type: 'locked',
    txn: i.txn,
    recordPartition: i.recordPartition,
    deadline: i.deadline,
    write: writes(i),
  });
  if (keys === 'all') {
    for (const { intent } of intents(kv)) if (meets(intent)) return locked(intent);
    return undefined;
  }
  for (const k of keys) {
    const i = intentOn(kv, k);
    if (i !== undefined && meets(i)) return locked(i);
  }
  return undefined;
}

/** A transaction's record in this partition, if any. */
export function recordOf(kv: PartitionKv, txn: string): TxnRecord | undefined {
  const row = kv.get(recordKey(txn));
  return row && decodeRecord(row.value);
}

/** The `txnRecord` read: the record's state. */
export function recordState(kv: PartitionKv, txn: string): KvResult {
  const r = recordOf(kv, txn);
  if (r === undefined) return { type: 'txn', step: { outcome: 'missing' } };
  if (r.state === 'pending') return { type: 'txn', step: { outcome: 'pending', deadline: r.deadline } };
  if (r.state === 'committed') return { type: 'txn', step: { outcome: 'committed', branch: r.branch } };
  return ABORTED;
}

/**
 * Applies one command at `index` and log time `now` with the transaction
 * rules: a client command naming a reserved key is refused; one touching a
 * key under another transaction's intent answers `locked` and does nothing;
 * the rest apply to the partition as clients see it (reserved rows hidden).
 * Transaction steps apply to the reserved rows.
 */
export function applyTxnAware(kv: PartitionKv, op: KvOp, index: number, now: number, ctx: TxnContext): KvResult {
  switch (op.op) {
    case 'txnPrepare':
      return prepare(kv, op, index, now, ctx);
    case 'txnCommit':
      return commit(kv, op, index);
    case 'txnAbort':
      return abort(kv, op, index, now, ctx);
    case 'txnResolve':
      return resolve(kv, op, index, now, ctx);
    case 'txnForget':
      return forget(kv, op);
    case 'delExpired':
      // The sweeper also drops aborted records and abort markers past their retention.
      return applyOp(kv, op, index, now);
    case 'checksum':
      return applyOp(kv, op, index, now);
    default: {
      const keys = opKeys(op);
      if (keys !== 'all' && keys.some(isReservedKey)) return RESERVED;
      const lock = lockOf(kv, keys, true, ctx.intents);
      if (lock !== undefined) return lock;
      return applyOp(viewOf(kv), op, index, now);
    }
  }
}

type Step<K extends KvOp['op']> = Extract<KvOp, { op: K }>;

function prepare(kv: PartitionKv, op: Step<'txnPrepare'>, index: number, now: number, ctx: TxnContext): KvResult {
  if (kv.get(markerKey(op.txn)) !== undefined) return ABORTED;
  const keys = new Map<string, Uint8Array>();
  for (const c of op.compares) keys.set(rowId(c.key), c.key);
  for (const inner of [...op.success, ...op.failure]) {
    const ks = opKeys(inner);
    if (ks === 'all')
      return { type: 'error', message: `ERR ${inner.op} cannot run in a transaction across partitions` };
    for (const k of ks) keys.set(rowId(k), k);
  }
  for (const k of keys.values()) {
    if (isReservedKey(k)) return RESERVED;
    const held = intentOn(kv, k);
    if (held !== undefined && held.txn !== op.txn) {
      return { type: 'txn', step: { outcome: 'conflict', txn: held.txn, recordPartition: held.recordPartition } };
    }
  }
  const isRecord = op.participants.length > 0;
  if (isRecord && recordOf(kv, op.txn)?.state === 'aborted') return ABORTED;
  const view = viewOf(kv);
  const held = op.compares.every((c) => {
    const rec = view.get(c.key);
    return compareHolds(c.compare, rec && !isExpired(rec, now) ? rec : undefined);
  });
  const run = (ops: KvOp[]): { results: KvResult[]; overlay: OverlayKv } => {
    const overlay = new OverlayKv(view);
    const p = overlay.asPartition();
    return { results: ops.map((o) => applyOp(p, o, index, now)), overlay };
  };
  const success = run(op.success);
  const failure = run(op.failure);
  const stateIn = (o: OverlayKv, id: string): TxnValue =>
    o.writes.has(id) ? branchValue(o.writes.get(id)) : { kind: 'unchanged' };
  const deadline = now + op.timeoutMs;
  let laid = 0;
  for (const [id, k] of keys) {
    const row = intentKey(k);
    if (kv.get(row) === undefined) laid++;
    const intent: Intent = {
      txn: op.txn,
      recordPartition: op.recordPartition,
      deadline,
      success: stateIn(success.overlay, id),
      failure: stateIn(failure.overlay, id),
    };
    kv.put(row, encodeIntent(intent), { revision: index });
  }
  ctx.intents.add(laid);
  if (isRecord) {
    kv.put(recordKey(op.txn), encodeRecord({ state: 'pending', participants: op.participants, deadline }), {
      revision: index,
    });
  }
  return { type: 'txn', step: { outcome: 'prepared', held, success: success.results, failure: failure.results } };
}

function commit(kv: PartitionKv, op: Step<'txnCommit'>, index: number): KvResult {
  const r = recordOf(kv, op.txn);
  if (r === undefined) return { type: 'txn', step: { outcome: 'missing' } };
  if (r.state === 'aborted') return ABORTED;
  if (r.state === 'committed') return { type: 'txn', step: { outcome: 'committed', branch: r.branch } };
  // The commit point of the transaction.
  kv.put(recordKey(op.txn), encodeRecord({ ...r, state: 'committed', branch: op.branch }), { revision: index });
  return { type: 'txn', step: { outcome: 'committed', branch: op.branch } };
}

function abort(kv: PartitionKv, op: Step<'txnAbort'>, index: number, now: number, ctx: TxnContext): KvResult {
  const r = recordOf(kv, op.txn);
  const tombstone = (participants: number[], deadline: number): void => {
    // Kept past any retry of the transaction's prepare, so a late one cannot create the record again.
    kv.put(recordKey(op.txn), encodeRecord({ state: 'aborted', participants, deadline }), {
      revision: index,
      expiresAt: now + ctx.retentionMs,
    });
  };
  if (r === undefined) {
    tombstone([], now);
    return ABORTED;
  }
  if (r.state === 'aborted') return ABORTED;
  if (r.state === 'committed') return { type: 'txn', step: { outcome: 'committed', branch: r.branch } };
  // Only the coordinator aborts a pending transaction before its deadline; others wait for it.
  if (!op.coordinator && now < r.deadline) return { type: 'txn', step: { outcome: 'pending', deadline: r.deadline } };
  tombstone(r.participants, r.deadline);
  return ABORTED;
}

function resolve(kv: PartitionKv, op: Step<'txnResolve'>, index: number, now: number, ctx: TxnContext): KvResult {
  const mine: { key: Uint8Array; intent: Intent }[] = [];
  if (ctx.intents.of(kv) > 0) for (const it of intents(kv)) if (it.intent.txn === op.txn) mine.push(it);
  if (mine.length === 0) {
    // Aborted before its prepare arrived here: a late prepare must lay nothing.
    if (op.branch === 'abort' && kv.get(markerKey(op.txn)) === undefined) {
      kv.put(markerKey(op.txn), new Uint8Array(), { revision: index, expiresAt: now + ctx.retentionMs });
    }
    return { type: 'txn', step: { outcome: 'resolved' } };
  }
  for (const { key, intent } of mine) {
    if (op.branch !== 'abort') {
      const v = intent[op.branch];
      if (v.kind === 'deleted') kv.delete(key);
      else if (v.kind === 'put') {
        if (v.expiresAt !== undefined && v.expiresAt <= now) kv.delete(key);
        else {
          const opts: Parameters<PartitionKv['put']>[2] = { revision: index };
          if (v.expiresAt !== undefined) opts.expiresAt = v.expiresAt;
          if (v.type !== undefined) opts.type = v.type;
          kv.put(key, v.value, opts);
        }
      }
    }
    kv.delete(intentKey(key));
  }
  ctx.intents.add(-mine.length);
  return { type: 'txn', step: { outcome: 'resolved' } };
}

function forget(kv: PartitionKv, op: Step<'txnForget'>): KvResult {
  const r = recordOf(kv, op.txn);
  if (r?.state === 'pending') return { type: 'txn', step: { outcome: 'pending', deadline: r.deadline } };
  if (r !== undefined) kv.delete(recordKey(op.txn));
  return { type: 'txn', step: { outcome: 'forgotten' } };
}
