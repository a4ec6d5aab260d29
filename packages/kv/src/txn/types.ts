import type { Clock } from '@cohort/core';
import type { KvClientWrite } from '../client-request.js';
import type { KvCompare } from '../command.js';
import type { KvRequest, KvResponse } from '../request.js';
import type { KvResult } from '../result.js';
import type { SlotMap } from '../routing.js';

/**
 * A transaction across any keys, etcd style: when every comparison holds as
 * the transaction prepares, the `success` operations apply, else the
 * `failure` ones; all of the chosen branch's writes become visible at one
 * instant (the commit of the transaction record) or none do.
 *
 * Redis' forms map onto it: MULTI/EXEC with WATCH compares each watched
 * key's mod revision (`{ kind: 'modRevision', value: seen }`, 0 for absent)
 * with an empty `failure` (EXEC answers nil when `succeeded` is false);
 * MSETNX compares `absent` on every key with the sets as `success`; MSET and
 * multi-key DEL have no comparisons. Reads queued in a MULTI are
 * `{ op: 'read', ... }` operations, answered from the state the transaction
 * sees.
 */
export interface TxnRequest {
  compares: TxnKeyCompare[];
  success: KvClientWrite[];
  failure: KvClientWrite[];
}

/** A comparison of {@link TxnRequest}: `compare` must hold for `key`. */
export interface TxnKeyCompare {
  key: Uint8Array;
  compare: KvCompare;
}

/**
 * A transaction's answer: which branch applied and its operations' answers
 * in request order (an operation split over partitions, such as MSET or DEL
 * of keys in several, answers as the whole command would: OK, the sum of
 * deletions, the values in key order); or an `error` in Redis' words (bad
 * input, refused before anything was written: `ERR ...`; or `TRYAGAIN ...`
 * after repeated conflicts with other transactions, nothing applied); or a
 * `failure` when partitions could not be reached (`code` UNAVAILABLE or
 * TIMEOUT: whether the transaction applied is then unknown only if the
 * message says so, otherwise nothing applied).
 */
export type TxnReply =
  | { type: 'txn'; succeeded: boolean; results: KvResult[]; txn: string }
  | Extract<KvResponse, { type: 'error' }>
  | Extract<KvResponse, { type: 'failure' }>;

/**
 * One partition as the coordinator and the resolvers reach it: `execute`
 * serves a request wherever the partition's leader is (a node's
 * `KvService` of that partition, forwarding included) and retries what is
 * safe to retry until its own timeout.
 */
export interface TxnParticipant {
  execute(req: KvRequest): Promise<KvResponse>;
}

/** Options of {@link TxnCoordinator}. */
export interface TxnCoordinatorOptions {
  /** How keys map onto partitions. */
  slots: SlotMap;
  /** The partition `p` (0 .. P-1) as this node reaches it. */
  partition: (p: number) => TxnParticipant;
  /** Times backoffs (injected so the simulator drives it). */
  clock: Clock;
  /** Wall-clock Unix ms, for the deadlines of relative expiries. @default Date.now */
  wallClock?: () => number;
  /** A float in [0, 1): backoff jitter. */
  random: () => number;
  /**
   * This coordinator's client id for exactly-once sessions: unique in the
   * cluster and never reused (a restarted node picks a new one). Transaction
   * ids are this id and a counter.
   */
  clientId: string;
  /**
   * Log time (ms) after which others may abort a transaction still PENDING
   * (its coordinator presumed dead), and after which an intent whose record
   * is missing is aborted. @default 5000
   */
  resolveTimeoutMs?: number;
  /** Rounds tried when other transactions hold intents on the keys. @default 8 */
  maxAttempts?: number;
  /** First backoff after a conflict (ms); doubled each round, randomized. @default 5 */
  backoffMs?: number;
  /** The most keys (comparisons and operations, both branches) of one transaction. @default 1024 */
  maxKeys?: number;
  /** The most bytes of keys and values of one transaction. @default 16777216 (16 MiB) */
  maxBytes?: number;
  /**
   * Told of each protocol step as it is sent and as its answer arrives
   * (simulation: crashes at every step; metrics). Must not throw.
   */
  observe?: (e: TxnStepEvent) => void;
}

/** A protocol step of a transaction, as {@link TxnCoordinatorOptions.observe} hears of it. */
export interface TxnStepEvent {
  txn: string;
  step: 'txnPrepare' | 'txnCommit' | 'txnAbort' | 'txnResolve' | 'txnForget' | 'exec';
  partition: number;
  phase: 'send' | 'answer';
}

export type { KvClientWrite };
