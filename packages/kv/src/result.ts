import type { KvRecord } from '@cohort/storage';

/**
 * What applying a command yields; values, not exceptions, so every replica
 * computes the same answer and the proposer returns it to the client.
 */
export type KvResult =
  | { type: 'ok' }
  /** A conditional SET that did not happen, or SET ... GET of an absent key. */
  | { type: 'nil' }
  | { type: 'int'; value: bigint }
  | { type: 'bulk'; value: Uint8Array }
  /** A command that failed on the data (for example INCR of a non-integer). */
  | { type: 'error'; message: string }
  /** The answers of an EXEC, in order; null when a watched key changed and nothing ran. */
  | { type: 'list'; items: KvResult[] | null }
  /**
   * A conditional write's outcome, etcd style: whether the comparison held,
   * the entry's log index (`revision`), and the key's record: after a put,
   * as deleted by a delete, or as it stands when the comparison failed
   * (absent when there is no such key).
   */
  | { type: 'cond'; succeeded: boolean; revision: number; record?: KvRecord };
