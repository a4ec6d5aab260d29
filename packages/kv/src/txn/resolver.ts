import type { Clock } from '@cohort/core';
import type { TxnBranch } from '../command.js';
import type { KvRequest, KvResponse } from '../request.js';
import type { KvResult } from '../result.js';
import type { TxnParticipant } from './types.js';

type Locked = Extract<KvResult, { type: 'locked' }>;

/**
 * What meeting an intent came to: serve the command again, or (a read) serve
 * it passing the pending transaction, then check it is still pending
 * ({@link IntentResolver.pending}) before answering.
 */
export type Resolution = { kind: 'retry' } | { kind: 'pass'; txn: string } | { kind: 'timeout'; why: string };

/** Options of {@link IntentResolver}. */
export interface IntentResolverOptions {
  /** Every partition as this node reaches it (the record partition's, to read and abort records). */
  participant: (p: number) => TxnParticipant;
  /** Proposes a write on this partition (its `txnResolve`). */
  local: (req: KvRequest) => Promise<KvResponse>;
  clock: Clock;
  /** Wall-clock Unix ms, to tell when a deadline in log time has passed (the log's own check decides). */
  wallClock: () => number;
  /** A float in [0, 1), for the backoff of a write waiting on a pending transaction. */
  random?: () => number;
  /**
   * Whether this partition (as this node's machine stands) still holds an intent of `txn`; absent: assumed
   * held. Asked when the transaction's record is missing, which it also is once the transaction finished
   * and every intent was resolved.
   */
  holds?: (txn: string) => boolean;
  /** Told when this node resolved a transaction's intents here (simulation coverage, metrics). */
  onResolve?: (txn: string, branch: TxnBranch | 'abort') => void;
}

/**
 * Finishes the transaction whose intent a command met, as the leader of the
 * intent's partition: reads the transaction's record linearizably on its
 * partition; committed, proposes the resolve of its intents here, aborted
 * likewise (dropping them); pending, a read may pass (it linearizes before
 * the commit point, if the record is still pending once the read was
 * served) and a write waits with backoff; pending past its
 * deadline, or missing past the intent's deadline (its coordinator died
 * before the record was written), aborts the record first. So no intent
 * blocks a key past its transaction's timeout, whoever meets it.
 */
export class IntentResolver {
  constructor(private readonly o: IntentResolverOptions) {}

  /**
   * Resolves `lock` for a read (`reader`: a pending transaction is passed) or
   * a write, giving up at `deadline` (clock ms).
   */
  async resolve(lock: Locked, reader: boolean, deadline: number): Promise<Resolution> {
    const record = this.o.participant(lock.recordPartition);
    const id = new TextEncoder().encode(lock.txn);
    for (let attempt = 0; ; attempt++) {
      const res = await record.execute({ kind: 'read', op: 'txnRecord', keys: [id], now: 0 });
      if (res.type === 'txn') {
        const s = res.step;
        if (s.outcome === 'committed' || s.outcome === 'aborted') {
          const branch = s.outcome === 'committed' ? s.branch : 'abort';
          const done = await this.o.local({
            kind: 'write',
            command: { op: 'txnResolve', txn: lock.txn, branch, now: 0 },
          });
          if (done.type === 'txn') {
            this.o.onResolve?.(lock.txn, branch);
            return { kind: 'retry' };
          }
          if (this.o.clock.now() >= deadline) return { kind: 'timeout', why: describe(done) };
        } else if (s.outcome === 'pending' && reader) {
          return { kind: 'pass', txn: lock.txn };
        } else if (
          (s.outcome === 'pending' && this.o.wallClock() >= s.deadline) ||
          (s.outcome === 'missing' && this.o.wallClock() >= lock.deadline)
        ) {
          // Its coordinator is presumed dead: abort it (the record partition's log decides whether it may).
          await record.execute({
            kind: 'write',
            command: { op: 'txnAbort', txn: lock.txn, coordinator: false, now: 0 },
          });
          continue;
        }
      }
      const wait = Math.min(5 * 2 ** attempt, 100) * (0.5 + (this.o.random?.() ?? 0.5));
      if (this.o.clock.now() + wait >= deadline) {
        return { kind: 'timeout', why: res.type === 'txn' ? res.step.outcome : describe(res) };
      }
      await new Promise<void>((r) => this.o.clock.setTimeout(r, wait));
      // No record: either its prepare has not reached the record partition yet, or the transaction
      // finished and its coordinator forgot the record once every intent was resolved, this one
      // included (the command met it before its resolve applied here). Waiting on the record alone
      // waited out the intent's deadline for an intent long gone (a cross-partition MGET or MSET right
      // after another timed out at 5 s): once the intent is gone, the command is served again.
      if (res.type === 'txn' && res.step.outcome === 'missing' && this.o.holds?.(lock.txn) === false) {
        return { kind: 'retry' };
      }
    }
  }
}

/** Whether every transaction of `txns` (id to record partition) is still pending: a read that passed them may answer. */
export async function allPending(
  participant: (p: number) => TxnParticipant,
  txns: ReadonlyMap<string, number>,
): Promise<boolean> {
  const states = await Promise.all(
    [...txns].map(([txn, p]) =>
      participant(p).execute({ kind: 'read', op: 'txnRecord', keys: [new TextEncoder().encode(txn)], now: 0 }),
    ),
  );
  return states.every((r) => r.type === 'txn' && r.step.outcome === 'pending');
}

function describe(r: KvResponse): string {
  if (r.type === 'failure') return `${r.code}: ${r.message}`;
  if (r.type === 'error') return r.message;
  return r.type;
}

/** The answer to a command that met an intent it could not get past in time. */
export function lockedError(lock: Locked, why: string): KvResult {
  return {
    type: 'error',
    message: `TRYAGAIN the key is locked by transaction ${lock.txn} (record in partition ${lock.recordPartition}), ${why}: retry`,
  };
}
