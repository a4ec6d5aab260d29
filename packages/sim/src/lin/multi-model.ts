import type { KvInput, Operation } from './history.js';
import type { Model } from './model.js';

/** One write of a multi-key transaction: set a key, or delete it. */
export type TxnWrite = { op: 'set'; key: string; value: string } | { op: 'del'; key: string };

/**
 * A multi-key operation for the linearizability checker: the single-key SET,
 * INCR and GET of {@link KvInput}, plus operations that touch several keys
 * atomically, as a transaction across partitions must.
 *
 * - `mset`: sets every entry; answers 'ok'.
 * - `msetnx`: sets every entry when none of the keys exists ('1'), else
 *   changes nothing ('0').
 * - `del`: deletes the keys; answers how many existed, in decimal.
 * - `mget`: reads the keys at one instant; answers their values in order
 *   ('' for an absent key).
 * - `txn`: when every compare holds (the key's value equals `value`, '' for
 *   absent) applies `success`, else `failure`; `read` keys are read at the
 *   same instant, before the writes. Answers a {@link TxnOutcome}.
 */
export type MultiKvInput =
  | KvInput
  | { op: 'mset'; entries: { key: string; value: string }[] }
  | { op: 'msetnx'; entries: { key: string; value: string }[] }
  | { op: 'del'; keys: string[] }
  | { op: 'mget'; keys: string[] }
  | {
      op: 'txn';
      compare: { key: string; value: string }[];
      success: TxnWrite[];
      failure: TxnWrite[];
      read?: string[];
    };

/** The answer of a `txn` operation: which branch ran, and the values of its `read` keys. */
export interface TxnOutcome {
  succeeded: boolean;
  values: string[];
}

/** The answer of a {@link MultiKvInput}: a string for single-key ops, MSET, MSETNX and DEL; values for MGET; a {@link TxnOutcome} for a transaction. */
export type MultiKvOutput = string | readonly string[] | TxnOutcome;

/** A multi-key history entry. */
export type MultiKvOperation = Operation<MultiKvInput, MultiKvOutput>;

/** A multi-key state: the present keys and their values (an absent key is ''). */
export type MultiKvState = ReadonlyMap<string, string>;

const INTEGER = /^-?(0|[1-9][0-9]*)$/;

/** The keys an operation reads or writes. */
export function keysOf(input: MultiKvInput): string[] {
  switch (input.op) {
    case 'set':
    case 'incr':
    case 'get':
      return [input.key];
    case 'mset':
    case 'msetnx':
      return input.entries.map((e) => e.key);
    case 'del':
    case 'mget':
      return input.keys;
    case 'txn':
      return [
        ...input.compare.map((c) => c.key),
        ...input.success.map((w) => w.key),
        ...input.failure.map((w) => w.key),
        ...(input.read ?? []),
      ];
    default: {
      const never: never = input;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

function withWrites(state: MultiKvState, writes: readonly TxnWrite[]): MultiKvState {
  if (writes.length === 0) return state;
  const next = new Map(state);
  for (const w of writes) {
    if (w.op === 'set' && w.value !== '') next.set(w.key, w.value);
    else next.delete(w.key);
  }
  return next;
}

function sameValues(output: MultiKvOutput, values: readonly string[]): boolean {
  return Array.isArray(output) && output.length === values.length && output.every((v, i) => v === values[i]);
}

function isOutcome(output: MultiKvOutput): output is TxnOutcome {
  return typeof output === 'object' && !Array.isArray(output);
}

type Step = { ok: boolean; state: MultiKvState };

function stepTxn(
  state: MultiKvState,
  input: Extract<MultiKvInput, { op: 'txn' }>,
  output: MultiKvOutput | undefined,
): Step {
  const succeeded = input.compare.every((c) => (state.get(c.key) ?? '') === c.value);
  const values = (input.read ?? []).map((k) => state.get(k) ?? '');
  const next = withWrites(state, succeeded ? input.success : input.failure);
  if (output === undefined) return { ok: true, state: next };
  const ok =
    isOutcome(output) &&
    output.succeeded === succeeded &&
    output.values.length === values.length &&
    output.values.every((v, i) => v === values[i]);
  return { ok, state: next };
}

function step(state: MultiKvState, input: MultiKvInput, output: MultiKvOutput | undefined): Step {
  const unknown = output === undefined;
  switch (input.op) {
    case 'set':
      return { ok: unknown || output === 'ok', state: withWrites(state, [input]) };
    case 'incr': {
      const cur = state.get(input.key) ?? '';
      if (cur !== '' && !INTEGER.test(cur)) return { ok: unknown || output === 'error', state };
      const next = cur === '' ? '1' : String(BigInt(cur) + 1n);
      return { ok: unknown || output === next, state: withWrites(state, [{ op: 'set', key: input.key, value: next }]) };
    }
    case 'get':
      return { ok: unknown || output === (state.get(input.key) ?? ''), state };
    case 'mset':
      return {
        ok: unknown || output === 'ok',
        state: withWrites(
          state,
          input.entries.map((e) => ({ op: 'set', ...e })),
        ),
      };
    case 'msetnx': {
      if (input.entries.some((e) => state.has(e.key))) return { ok: unknown || output === '0', state };
      return {
        ok: unknown || output === '1',
        state: withWrites(
          state,
          input.entries.map((e) => ({ op: 'set', ...e })),
        ),
      };
    }
    case 'del': {
      const existed = new Set(input.keys.filter((k) => state.has(k))).size;
      const next = withWrites(
        state,
        input.keys.map((key) => ({ op: 'del', key })),
      );
      return { ok: unknown || output === String(existed), state: next };
    }
    case 'mget':
      return {
        ok:
          unknown ||
          sameValues(
            output,
            input.keys.map((k) => state.get(k) ?? ''),
          ),
        state,
      };
    case 'txn':
      return stepTxn(state, input, output);
    default: {
      const never: never = input;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Splits a history into parts that share no key: two operations land in the
 * same part when a chain of multi-key operations links their keys (union-find
 * over keys), so single-key histories still split per key.
 */
function partitionByLinkedKeys(ops: { input: MultiKvInput }[]): number[][] {
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let root = k;
    for (let p = parent.get(root); p !== undefined && p !== root; p = parent.get(root)) root = p;
    for (let cur = k; cur !== root; ) {
      const p = parent.get(cur) as string;
      parent.set(cur, root);
      cur = p;
    }
    return root;
  };
  const keysPerOp = ops.map((o) => keysOf(o.input));
  for (const keys of keysPerOp) {
    for (const k of keys) if (!parent.has(k)) parent.set(k, k);
    const first = keys[0];
    if (first === undefined) continue;
    for (const k of keys.slice(1)) {
      const a = find(first);
      const b = find(k);
      if (a !== b) parent.set(b, a);
    }
  }
  const parts = new Map<string, number[]>();
  const keyless: number[] = [];
  keysPerOp.forEach((keys, i) => {
    const first = keys[0];
    if (first === undefined) {
      keyless.push(i);
      return;
    }
    const root = find(first);
    const list = parts.get(root);
    if (list) list.push(i);
    else parts.set(root, [i]);
  });
  return keyless.length > 0 ? [...parts.values(), keyless] : [...parts.values()];
}

/**
 * A model of a keyspace under single-key and atomic multi-key operations
 * ({@link MultiKvInput}): a transaction's writes are seen all together or
 * not at all, and an MGET reads every key at one instant. Partitioned by
 * keys linked through multi-key operations.
 */
export const multiKvModel: Model<MultiKvState, MultiKvInput, MultiKvOutput> = {
  init: () => new Map(),
  step,
  key: (s) => JSON.stringify([...s.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))),
  partition: partitionByLinkedKeys,
};

/**
 * Drops operations whose presence cannot change the verdict: reads (GET,
 * MGET, and transactions that write nothing) whose answer was never seen.
 */
export function prunedMultiKvHistory(ops: MultiKvOperation[]): MultiKvOperation[] {
  return ops.filter((o) => {
    if (o.output !== undefined) return true;
    switch (o.input.op) {
      case 'get':
      case 'mget':
        return false;
      case 'txn':
        return o.input.success.length > 0 || o.input.failure.length > 0;
      default:
        return true;
    }
  });
}
