import type { Operation } from './history.js';
import type { Model } from './model.js';

/** The verdict of {@link checkLinearizable}. */
export type LinearizabilityResult =
  | { result: 'ok' }
  | {
      result: 'illegal' /** Indices (into the input) of the partition that has no linearization. */;
      partition: number[];
    }
  | { result: 'unknown'; reason: string; partition: number[] };

/** Options of {@link checkLinearizable}. */
export interface CheckOptions {
  /** Search steps per partition before giving up with 'unknown'. @default 5_000_000 */
  maxSteps?: number;
}

interface Node {
  /** Operation index within the partition. */
  id: number;
  isCall: boolean;
  /** For a call: its return node. */
  match: Node | undefined;
  time: number;
  prev: Node | undefined;
  next: Node | undefined;
}

/**
 * Decides whether a history is linearizable with respect to `model` (Wing &
 * Gong's search with Lowe's memoization, as in Porcupine): linearize a pending
 * call if the model allows it and the (linearized set, state) pair is new;
 * backtrack at a return that has no linearized call. Independent partitions
 * (keys) are checked separately.
 */
export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  options: CheckOptions = {},
): LinearizabilityResult {
  const parts = model.partition ? model.partition(history) : [history.map((_, i) => i)];
  const maxSteps = options.maxSteps ?? 5_000_000;
  for (const part of parts) {
    const ops = part.map((i) => history[i] as Operation<I, O>);
    const r = checkPartition(model, ops, maxSteps);
    if (r === 'illegal') return { result: 'illegal', partition: part };
    if (r === 'unknown')
      return {
        result: 'unknown',
        reason: `gave up after ${maxSteps} steps on a partition of ${part.length} operations`,
        partition: part,
      };
  }
  return { result: 'ok' };
}

function buildList<I, O>(ops: Operation<I, O>[]): Node | undefined {
  const events: Node[] = [];
  ops.forEach((o, id) => {
    if (!(o.ret >= o.call)) throw new RangeError(`operation ${id} returns (${o.ret}) before it is called (${o.call})`);
    const ret: Node = { id, isCall: false, match: undefined, time: o.ret, prev: undefined, next: undefined };
    const call: Node = { id, isCall: true, match: ret, time: o.call, prev: undefined, next: undefined };
    events.push(call, ret);
  });
  // Calls sort before returns at equal times: touching operations count as concurrent.
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.id - b.id : a.isCall ? -1 : 1));
  const head: Node = { id: -1, isCall: false, match: undefined, time: -1, prev: undefined, next: undefined };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  return head;
}

function lift(call: Node): void {
  (call.prev as Node).next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.match as Node;
  (ret.prev as Node).next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

function unlift(call: Node): void {
  const ret = call.match as Node;
  (ret.prev as Node).next = ret;
  if (ret.next) ret.next.prev = ret;
  (call.prev as Node).next = call;
  if (call.next) call.next.prev = call;
}

function checkPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  maxSteps: number,
): 'ok' | 'illegal' | 'unknown' {
  const head = buildList(ops) as Node;
  const before = interchangeable(ops);
  const words = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  const seen = new Set<string>();
  const stack: { call: Node; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;
  while (head.next) {
    if (++steps > maxSteps) return 'unknown';
    if (!entry) return 'illegal';
    if (entry.isCall) {
      const b = before[entry.id] as number;
      if (b >= 0 && ((words[b >> 5] as number) & (1 << (b & 31))) === 0) {
        // An identical operation called earlier is not linearized yet: it goes first (see interchangeable).
        entry = entry.next;
        continue;
      }
      const op = ops[entry.id] as Operation<I, O>;
      const r = model.step(state, op.input, op.output);
      if (r.ok) {
        words[entry.id >> 5] = (words[entry.id >> 5] as number) | (1 << (entry.id & 31));
        const k = `${words.join(',')}|${model.key(r.state)}`;
        if (!seen.has(k)) {
          seen.add(k);
          stack.push({ call: entry, state });
          state = r.state;
          lift(entry);
          entry = head.next;
          continue;
        }
        words[entry.id >> 5] = (words[entry.id >> 5] as number) & ~(1 << (entry.id & 31));
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized yet: undo the last choice.
      const top = stack.pop();
      if (!top) return 'illegal';
      state = top.state;
      const call = top.call;
      words[call.id >> 5] = (words[call.id >> 5] as number) & ~(1 << (call.id & 31));
      unlift(call);
      entry = call.next;
    }
  }
  return 'ok';
}

/**
 * For each operation of unknown outcome, the one with the same input called
 * just before it (or -1). Such operations are interchangeable: neither has
 * an answer or a return time, and the earlier one may take effect wherever
 * the later one could. So the search only linearizes them in call order,
 * which keeps a history with many unanswered INCRs from exploding (n of them
 * would otherwise give 2^n linearized sets instead of n + 1).
 */
function interchangeable<I, O>(ops: Operation<I, O>[]): Int32Array {
  const before = new Int32Array(ops.length).fill(-1);
  const classes = new Map<string, number[]>();
  ops.forEach((o, i) => {
    if (o.output !== undefined || o.ret !== Number.POSITIVE_INFINITY) return;
    const k = JSON.stringify(o.input);
    const list = classes.get(k);
    if (list) list.push(i);
    else classes.set(k, [i]);
  });
  for (const list of classes.values()) {
    list.sort((a, b) => (ops[a] as Operation<I, O>).call - (ops[b] as Operation<I, O>).call || a - b);
    for (let j = 1; j < list.length; j++) before[list[j] as number] = list[j - 1] as number;
  }
  return before;
}
