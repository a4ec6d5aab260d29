/**
 * One client operation as observed from outside the system: when it was
 * invoked, when (if ever) its answer came back, and what the answer was.
 */
export interface Operation<I, O> {
  /** The client that issued it; a client has at most one operation outstanding. */
  client: number;
  input: I;
  /** The answer; `undefined` when the outcome is unknown (timed out, lost). */
  output: O | undefined;
  /** Invocation time. */
  call: number;
  /** Completion time; `Infinity` when the outcome is unknown (the op may take effect any time after `call`). */
  ret: number;
}

/** A KV operation for the linearizability checker: the production KV's SET, INCR and GET. */
export type KvInput =
  | { op: 'set'; key: string; value: string }
  | { op: 'incr'; key: string }
  | { op: 'get'; key: string };

/**
 * A KV history entry: `output` is 'ok' for a SET, the new value (in decimal)
 * for an INCR, or 'error' when the key held no integer; the value read by a
 * GET ('' when absent).
 */
export type KvOperation = Operation<KvInput, string>;
