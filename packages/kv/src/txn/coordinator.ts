import { ErrorCode } from '@cohort/core';
import { InvalidExpireError, toCommand } from '../client-request.js';
import type { KvCommand, KvOp, TxnBranch, TxnCompare } from '../command.js';
import type { KvRequest, KvResponse } from '../request.js';
import type { TxnStepResult } from '../result.js';
import { TxnRefusedError } from './errors.js';
import { type TxnPlan, planTxn } from './plan.js';
import type { TxnCoordinatorOptions, TxnReply, TxnRequest } from './types.js';

/*
 * Two-phase commit over the partitions' own logs (Percolator / CockroachDB
 * style). Round 1: `txnPrepare` on every participant in parallel lays write
 * intents (each key's state after either branch, computed now) and, on the
 * record partition, a PENDING transaction record with a deadline in log time.
 * Round 2: `txnCommit` turns the record COMMITTED(branch): the commit point.
 * The client is answered then; `txnResolve` on each participant applies the
 * branch's intents as ordinary writes, and `txnForget` drops the record, in
 * the background. A conflict (another transaction's intent) aborts this
 * attempt (its own intents dropped) and retries it after a randomized backoff
 * under a new id. Whoever meets an intent of a transaction whose coordinator
 * died finishes it from the record: committed, it resolves the intents;
 * pending past the deadline or missing, it aborts the record (a tombstone,
 * so a late prepare cannot revive it) and drops them. Every step goes in the
 * coordinator's exactly-once session, so a retried step answers its first
 * answer. Single-partition transactions need no record: they are one `exec`
 * entry when their comparisons are WATCH's (mod revisions) and they have no
 * failure branch.
 */

const DEFAULTS = {
  resolveTimeoutMs: 5000,
  maxAttempts: 8,
  backoffMs: 5,
  maxKeys: 1024,
  maxBytes: 16 * 1024 * 1024,
};

type Failure = Extract<KvResponse, { type: 'failure' }>;

/** What one participant's prepare came to. */
type Prepared =
  | { kind: 'prepared'; step: Extract<TxnStepResult, { outcome: 'prepared' }> }
  | { kind: 'conflict'; txn: string }
  | { kind: 'aborted' }
  | { kind: 'unknown'; failure: Failure }
  | { kind: 'error'; message: string };

/**
 * Runs transactions across partitions (see {@link TxnRequest}) from one
 * node. Stateless beyond its session: a coordinator that dies leaves its
 * transactions to be finished by whoever meets their intents.
 */
export class TxnCoordinator {
  private readonly o: Required<Omit<TxnCoordinatorOptions, 'wallClock'>> & { wallClock: () => number };
  private nextSeq = 1;
  /** Sequence numbers sent and not yet answered: the session's low-water mark stays below the least. */
  private readonly inFlight = new Set<number>();
  private counter = 0;
  /** Resolutions running after their transactions were answered. */
  private readonly background = new Set<Promise<void>>();

  constructor(opts: TxnCoordinatorOptions) {
    this.o = { ...DEFAULTS, wallClock: Date.now, ...opts };
  }

  /**
   * Runs `req`; resolves with its answer (see {@link TxnReply}). Never
   * rejects: failures are values.
   */
  async run(req: TxnRequest): Promise<TxnReply> {
    const now = this.o.wallClock();
    let plan: TxnPlan;
    try {
      const toOp = (w: TxnRequest['success'][number]): KvOp => toCommand(w, now);
      plan = planTxn(
        this.o.slots,
        req.compares.map((c): TxnCompare => ({ key: c.key, compare: c.compare })),
        req.success.map(toOp),
        req.failure.map(toOp),
        { maxKeys: this.o.maxKeys, maxBytes: this.o.maxBytes },
      );
    } catch (err) {
      if (err instanceof InvalidExpireError || err instanceof TxnRefusedError) {
        return { type: 'error', message: err.message };
      }
      throw err;
    }
    for (let attempt = 0; ; attempt++) {
      const id = `${this.o.clientId}.${++this.counter}`;
      const out = await this.attempt(id, plan);
      if (out !== 'conflict') return out;
      if (attempt + 1 >= this.o.maxAttempts) {
        return {
          type: 'error',
          message: `TRYAGAIN the transaction met other transactions' intents ${this.o.maxAttempts} times; nothing was applied: retry`,
        };
      }
      const cap = this.o.backoffMs * 2 ** attempt;
      await this.sleep(cap / 2 + this.o.random() * cap);
    }
  }

  /** Resolves once every background resolution started so far has settled (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  private async attempt(id: string, plan: TxnPlan): Promise<TxnReply | 'conflict'> {
    const { recordPartition, parts } = plan;
    const participants = parts.map((p) => p.partition);
    const prepared = await Promise.all(
      parts.map((p) =>
        this.step(p.partition, {
          op: 'txnPrepare',
          txn: id,
          recordPartition,
          participants: p.partition === recordPartition ? participants : [],
          compares: p.compares,
          success: p.success,
          failure: p.failure,
          timeoutMs: this.o.resolveTimeoutMs,
          now: 0,
        }).then((r) => toPrepared(r)),
      ),
    );
    const error = prepared.find((p) => p.kind === 'error');
    const blocked = prepared.some((p) => p.kind !== 'prepared');
    if (blocked) {
      // Nothing committed: abort the record (a tombstone if the record's prepare is still on its way),
      // then drop this attempt's intents wherever they may be.
      const abort = await this.step(recordPartition, { op: 'txnAbort', txn: id, coordinator: true, now: 0 });
      const aborted = abort.type === 'txn' && abort.step.outcome === 'aborted';
      if (aborted)
        this.finish(
          id,
          plan,
          'abort',
          prepared.every((p) => p.kind !== 'unknown'),
        );
      const unknown = prepared.find((p) => p.kind === 'unknown');
      if (error?.kind === 'error') return { type: 'error', message: error.message };
      if (unknown?.kind === 'unknown') return unknown.failure;
      if (!aborted) return unreachable(abort, id);
      return 'conflict';
    }
    const steps = prepared.map((p) => (p as Extract<Prepared, { kind: 'prepared' }>).step);
    const branch: TxnBranch = steps.every((s) => s.held) ? 'success' : 'failure';
    const commit = await this.step(recordPartition, { op: 'txnCommit', txn: id, branch, now: 0 });
    if (commit.type === 'txn' && commit.step.outcome === 'aborted') {
      // Aborted by a resolver past the deadline (this coordinator was too slow): nothing applied.
      this.finish(id, plan, 'abort', true);
      return 'conflict';
    }
    if (commit.type !== 'txn' || commit.step.outcome !== 'committed') return unreachable(commit, id);
    this.finish(id, plan, commit.step.branch, true);
    return {
      type: 'txn',
      txn: id,
      succeeded: commit.step.branch === 'success',
      results: plan.merge(commit.step.branch, steps),
    };
  }

  /** Resolves every participant with `branch` in the background, then forgets the record when all did. */
  private finish(id: string, plan: TxnPlan, branch: TxnBranch | 'abort', forget: boolean): void {
    const job = (async () => {
      const done = await Promise.all(
        plan.parts.map((p) => this.step(p.partition, { op: 'txnResolve', txn: id, branch, now: 0 })),
      );
      if (forget && done.every((r) => r.type === 'txn' && r.step.outcome === 'resolved')) {
        await this.step(plan.recordPartition, { op: 'txnForget', txn: id, now: 0 });
      }
    })().catch(() => {
      // Whoever meets the intents resolves them.
    });
    this.background.add(job);
    void job.finally(() => this.background.delete(job));
  }

  /** Sends one step in this coordinator's session; the partition's service retries it while that is safe. */
  private async step(partition: number, op: KvOp): Promise<KvResponse> {
    const seq = this.nextSeq++;
    this.inFlight.add(seq);
    const lowWater = Math.min(seq, ...this.inFlight) - 1;
    const command: KvCommand = { ...op, session: { clientId: this.o.clientId, seq, lowWater } };
    const req: KvRequest = { kind: 'write', command };
    try {
      return await this.o.partition(partition).execute(req);
    } catch (err) {
      return { type: 'failure', code: ErrorCode.Internal, message: (err as Error).message };
    } finally {
      this.inFlight.delete(seq);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.o.clock.setTimeout(r, Math.max(0, Math.round(ms))));
  }
}

function toPrepared(r: KvResponse): Prepared {
  if (r.type === 'txn') {
    const s = r.step;
    if (s.outcome === 'prepared') return { kind: 'prepared', step: s };
    if (s.outcome === 'conflict') return { kind: 'conflict', txn: s.txn };
    if (s.outcome === 'aborted') return { kind: 'aborted' };
  }
  if (r.type === 'failure') return { kind: 'unknown', failure: r };
  if (r.type === 'error') return { kind: 'error', message: r.message };
  return { kind: 'error', message: `ERR a transaction prepare answered ${r.type}` };
}

/** The answer when a step's outcome could not be learnt: the transaction may or may not apply (resolvers finish it). */
function unreachable(r: KvResponse, id: string): TxnReply {
  const why = r.type === 'failure' ? `${r.code}: ${r.message}` : r.type === 'error' ? r.message : r.type;
  return {
    type: 'failure',
    code: r.type === 'failure' && r.code === ErrorCode.Timeout ? ErrorCode.Timeout : ErrorCode.Unavailable,
    message: `transaction ${id}: its outcome is unknown (${why}); it commits or aborts as a whole`,
  };
}
