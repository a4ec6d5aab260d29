import type { Entry, LogIndex } from '@cohort/core';

/**
 * The application replicated by one group. Calls come in log order, once per
 * entry, on every replica: `apply` must be deterministic.
 */
export interface StateMachine<R = unknown> {
  /** Applies a committed normal entry with data; the result resolves the proposal that made it. */
  apply(entry: Entry): R;
  /** Notes an entry that carries no command (a leader's no-op, a membership change). */
  skip?(index: LogIndex): void;
  /** An image of the state after the last applied entry. */
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot's image. */
  restore(data: Uint8Array): void;
}
