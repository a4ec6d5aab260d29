import type { KvCompare, KvOp, TxnBranch, TxnCompare } from '../command.js';
import type { KvResult, TxnStepResult } from '../result.js';
import type { SlotMap } from '../routing.js';
import { TxnRefusedError } from './errors.js';
import { isReservedKey } from './keyspace.js';
import { opKeys } from './op-keys.js';

/** One participant's share of a transaction. */
export interface TxnPart {
  partition: number;
  compares: TxnCompare[];
  success: KvOp[];
  failure: KvOp[];
}

/** Where each piece of an operation went, and how its answers merge into the operation's answer. */
interface Piece {
  partition: number;
  /** The operation's position in the partition's branch. */
  index: number;
}
type Merge = 'one' | 'ok' | 'sum' | 'values';

/** A transaction split over its partitions. */
export interface TxnPlan {
  recordPartition: number;
  parts: TxnPart[];
  /** Whether no operation was split (each partition's answers are the operations' answers, in order). */
  whole: boolean;
  /** The chosen branch's answers in request order, from each part's prepare answers (in `parts` order). */
  merge(branch: TxnBranch, prepared: Extract<TxnStepResult, { outcome: 'prepared' }>[]): KvResult[];
}

/** Limits of {@link planTxn}. */
export interface TxnLimits {
  maxKeys: number;
  maxBytes: number;
}

function compareBytes(c: KvCompare): number {
  return c.kind === 'value' ? c.value.length : 8;
}

/** The bytes of keys and values an operation carries (an estimate good for a limit). */
function opBytes(op: KvOp): number {
  let n = 0;
  const keys = opKeys(op);
  if (keys !== 'all') for (const k of keys) n += k.length;
  switch (op.op) {
    case 'set':
    case 'append':
    case 'setrange':
      n += op.value.length;
      break;
    case 'mset':
      for (const v of op.values) n += v.length;
      break;
    case 'collection':
    case 'read':
      for (const a of op.args) n += a.length;
      break;
    case 'cond':
      if (op.action.kind === 'put') n += op.action.value.length;
      n += compareBytes(op.compare);
      break;
    default:
      break;
  }
  return n;
}

/**
 * Splits a transaction by partition: each comparison goes to its key's
 * partition; an operation goes whole to the partition of its keys; MSET,
 * DEL, EXISTS and MGET of keys in several partitions are split into one
 * operation per partition (their answers merged back). Throws
 * {@link TxnRefusedError} before anything is written when the transaction
 * is too large, names a reserved key, holds an operation that may touch any
 * key (FLUSHDB, KEYS, SCAN, DBSIZE, RANDOMKEY) or a nested EXEC, or an
 * operation whose own keys span partitions (RENAME, COPY, LMOVE, ...).
 */
export function planTxn(
  slots: SlotMap,
  compares: TxnCompare[],
  success: KvOp[],
  failure: KvOp[],
  limits: TxnLimits,
): TxnPlan {
  let keys = compares.length;
  let bytes = 0;
  for (const c of compares) {
    if (isReservedKey(c.key)) throw new TxnRefusedError(RESERVED);
    bytes += c.key.length + compareBytes(c.compare);
  }
  for (const op of [...success, ...failure]) {
    const k = opKeys(op);
    if (op.op === 'exec') throw new TxnRefusedError('ERR a transaction cannot hold a MULTI/EXEC');
    if (k === 'all') {
      throw new TxnRefusedError(
        `ERR ${op.op === 'read' ? op.read.toUpperCase() : op.op.toUpperCase()} reads or writes every key: it cannot run in a transaction across partitions`,
      );
    }
    if (k.some(isReservedKey)) throw new TxnRefusedError(RESERVED);
    keys += k.length;
    bytes += opBytes(op);
  }
  if (keys > limits.maxKeys) {
    throw new TxnRefusedError(`ERR the transaction touches ${keys} keys, over the limit of ${limits.maxKeys}`);
  }
  if (bytes > limits.maxBytes) {
    throw new TxnRefusedError(`ERR the transaction carries ${bytes} bytes, over the limit of ${limits.maxBytes}`);
  }
  const parts = new Map<number, TxnPart>();
  const part = (p: number): TxnPart => {
    let t = parts.get(p);
    if (t === undefined) {
      t = { partition: p, compares: [], success: [], failure: [] };
      parts.set(p, t);
    }
    return t;
  };
  for (const c of compares) part(slots.partitionOfKey(c.key)).compares.push(c);
  const layout: Record<TxnBranch, { pieces: Piece[]; merge: Merge }[]> = { success: [], failure: [] };
  for (const branch of ['success', 'failure'] as const) {
    for (const op of branch === 'success' ? success : failure) {
      const split = splitOp(slots, op);
      const pieces = split.ops.map(([p, o]) => {
        const ops = part(p)[branch];
        ops.push(o);
        return { partition: p, index: ops.length - 1 };
      });
      layout[branch].push({ pieces, merge: split.merge });
    }
  }
  if (parts.size === 0) throw new TxnRefusedError('ERR the transaction touches no key');
  const first = compares[0]?.key ?? firstKey([...success, ...failure]);
  const recordPartition = first === undefined ? [...parts.keys()][0]! : slots.partitionOfKey(first);
  const ordered = [...parts.values()];
  return {
    recordPartition,
    parts: ordered,
    whole: [...layout.success, ...layout.failure].every((l) => l.merge === 'one'),
    merge(branch, prepared) {
      const at = new Map(ordered.map((p, i) => [p.partition, prepared[i]!] as const));
      return layout[branch].map(({ pieces, merge }) => {
        const answers = pieces.map((pc) => at.get(pc.partition)![branch][pc.index] ?? ERROR_MISSING);
        return mergeAnswers(merge, answers);
      });
    },
  };
}

const RESERVED = 'ERR keys starting with \\xff\\xffcohort.txn\\x00 are reserved for transactions';
const ERROR_MISSING: KvResult = { type: 'error', message: 'ERR a partition answered fewer operations than it ran' };

function firstKey(ops: KvOp[]): Uint8Array | undefined {
  for (const op of ops) {
    const k = opKeys(op);
    if (k !== 'all' && k[0] !== undefined) return k[0];
  }
  return undefined;
}

/** `op` as one operation per partition, and how their answers merge. */
function splitOp(slots: SlotMap, op: KvOp): { ops: [number, KvOp][]; merge: Merge } {
  const keys = opKeys(op) as Uint8Array[];
  const first = keys[0];
  const p0 = first === undefined ? undefined : slots.partitionOfKey(first);
  if (p0 === undefined)
    throw new TxnRefusedError(`ERR ${op.op.toUpperCase()} without a key cannot run in a transaction`);
  if (keys.every((k) => slots.partitionOfKey(k) === p0)) return { ops: [[p0, op]], merge: 'one' };
  const byPartition = <T>(items: T[], keyOf: (t: T) => Uint8Array): Map<number, T[]> => {
    const m = new Map<number, T[]>();
    for (const it of items) {
      const p = slots.partitionOfKey(keyOf(it));
      const list = m.get(p);
      if (list) list.push(it);
      else m.set(p, [it]);
    }
    return m;
  };
  switch (op.op) {
    case 'mset':
      if (op.nx) break;
      return {
        ops: [
          ...byPartition(
            op.keys.map((_, i) => i),
            (i) => op.keys[i]!,
          ),
        ].map(([p, is]) => [
          p,
          { op: 'mset', keys: is.map((i) => op.keys[i]!), values: is.map((i) => op.values[i]!), now: op.now },
        ]),
        merge: 'ok',
      };
    case 'del':
      return {
        ops: [...byPartition(op.keys, (k) => k)].map(([p, ks]) => [p, { op: 'del', keys: ks, now: op.now }]),
        merge: 'sum',
      };
    case 'read':
      if (op.read === 'exists') {
        return {
          ops: [...byPartition(op.keys, (k) => k)].map(([p, ks]) => [p, { ...op, keys: ks }]),
          merge: 'sum',
        };
      }
      if (op.read === 'mget') {
        // One MGET per key keeps the answers in key order when merged.
        return { ops: op.keys.map((k) => [slots.partitionOfKey(k), { ...op, keys: [k] }]), merge: 'values' };
      }
      break;
    default:
      break;
  }
  const name = op.op === 'read' ? op.read : op.op === 'collection' ? op.name : op.op;
  throw new TxnRefusedError(
    `ERR ${name.toUpperCase()} names keys of different partitions, which one operation cannot span; give them a common {hash tag}`,
  );
}

function mergeAnswers(merge: Merge, answers: KvResult[]): KvResult {
  if (merge === 'one') return answers[0] ?? ERROR_MISSING;
  const error = answers.find((a) => a.type === 'error');
  if (error) return error;
  switch (merge) {
    case 'ok':
      return { type: 'ok' };
    case 'sum':
      return { type: 'int', value: answers.reduce((n, a) => n + (a.type === 'int' ? a.value : 0n), 0n) };
    case 'values':
      return { type: 'list', items: answers.flatMap((a) => (a.type === 'list' ? (a.items ?? []) : [a])) };
    default: {
      const never: never = merge;
      throw new Error(`unknown merge ${String(never)}`);
    }
  }
}
