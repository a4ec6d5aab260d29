import type { KvRecord } from '@cohort/storage';
import type { TxnBranch } from './command.js';

/**
 * What a transaction step answers (see `KvOp` `txnPrepare` .. `txnForget`,
 * and the `txnRecord` read):
 * - `prepared`: the intents are laid; `held` whether this partition's
 *   comparisons held, and each branch's answers, one per operation sent;
 * - `conflict`: a key has another transaction's intent (nothing was laid);
 * - `aborted`, `committed` (with the branch), `pending` (with its deadline in
 *   log time), `missing`: the record's state;
 * - `resolved`, `forgotten`: a resolve or forget applied (idempotent).
 */
export type TxnStepResult =
  | { outcome: 'prepared'; held: boolean; success: KvResult[]; failure: KvResult[] }
  | { outcome: 'conflict'; txn: string; recordPartition: number }
  | { outcome: 'aborted' }
  | { outcome: 'committed'; branch: TxnBranch }
  | { outcome: 'pending'; deadline: number }
  | { outcome: 'missing' }
  | { outcome: 'resolved' }
  | { outcome: 'forgotten' };

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
  | { type: 'cond'; succeeded: boolean; revision: number; record?: KvRecord }
  /** A transaction step's outcome. */
  | { type: 'txn'; step: TxnStepResult }
  /**
   * The command met a key locked by a transaction's intent and did nothing:
   * the transaction, its record partition, the intent's deadline (log time)
   * and whether the intent writes the key. `KvService` resolves it and
   * serves the command again; it never reaches a client.
   */
  | { type: 'locked'; txn: string; recordPartition: number; deadline: number; write: boolean };
