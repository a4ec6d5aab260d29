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

const INTEGER = /^-?(0|[1-9][0-9]*)$/;

/** What INCR makes of `state` ('' for an absent key): the new value, or undefined when it holds no integer. */
function incremented(state: string): string | undefined {
  if (state === '') return '1';
  return INTEGER.test(state) ? String(BigInt(state) + 1n) : undefined;
}

/**
 * A register-per-key model of Redis' SET, INCR and GET over strings ('' is
 * an absent key), partitioned by key.
 */
export const kvModel: Model<string, KvInput, string> = {
  init: () => '',
  step(state, input, output) {
    switch (input.op) {
      case 'set':
        return { ok: output === undefined || output === 'ok', state: input.value };
      case 'incr': {
        const next = incremented(state);
        if (next === undefined) return { ok: output === undefined || output === 'error', state };
        return { ok: output === undefined || output === next, state: next };
      }
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
 * seen, and SETs of unknown outcome whose value no read ever returned (such
 * a write may always be taken to have never happened). INCRs of unknown
 * outcome stay: they shift every later value. Sound only when every SET's
 * value is unique and no value contains another, and no key sees both SET
 * and INCR, as the simulator's clients ensure (SET values look like
 * `[client.seq]` on register keys; INCR has keys of its own).
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
    if (o.input.op === 'incr') return true;
    const value = o.input.value;
    return (seen.get(o.input.key) ?? []).some((out) => out.includes(value));
  });
}
