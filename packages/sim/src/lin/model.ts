import type { KvInput, KvOperation } from './history.js';

/**
 * A sequential specification for the linearizability checker (Porcupine's
 * `Model`): `step` says whether `input` may return `output` in `state` and
 * what state follows. `output` is `undefined` for an operation whose answer
 * was never seen.
 */
export interface Model<S, I, O> {
  init(): S;
  step(state: S, input: I, output: O | undefined): { ok: boolean; state: S };
  /** A key identifying `state`, for memoization. */
  key(state: S): string;
  /** Splits a history into independent parts (by key); optional. */
  partition?(ops: { input: I }[]): number[][];
}

/** A register-per-key model of `put`/`append`/`get` over strings, partitioned by key. */
export const kvModel: Model<string, KvInput, string> = {
  init: () => '',
  step(state, input, output) {
    switch (input.op) {
      case 'put':
        return { ok: true, state: input.value };
      case 'append':
        return { ok: true, state: state + input.value };
      case 'get':
        return { ok: output === undefined || output === state, state };
      default: {
        const never: never = input;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  },
  key: (s) => s,
  partition(ops) {
    const byKey = new Map<string, number[]>();
    ops.forEach((o, i) => {
      const list = byKey.get(o.input.key);
      if (list) list.push(i);
      else byKey.set(o.input.key, [i]);
    });
    return [...byKey.values()];
  },
};

/**
 * Drops operations whose presence cannot change the verdict, which keeps the
 * search small when many outcomes are unknown: reads whose answer was never
 * seen, and writes of unknown outcome whose value no read ever returned
 * (such a write may always be taken to have never happened). Sound only when
 * every write's value is unique and no value contains another, as the
 * simulator's clients ensure (values look like `[client.seq]`).
 */
export function prunedKvHistory(ops: KvOperation[]): KvOperation[] {
  const seen = new Map<string, string[]>();
  for (const o of ops) {
    if (o.input.op !== 'get' || o.output === undefined) continue;
    const list = seen.get(o.input.key);
    if (list) list.push(o.output);
    else seen.set(o.input.key, [o.output]);
  }
  return ops.filter((o) => {
    if (o.output !== undefined) return true;
    if (o.input.op === 'get') return false;
    const value = o.input.value;
    return (seen.get(o.input.key) ?? []).some((out) => out.includes(value));
  });
}
