import { ErrorCode } from '@cohort/core';
import { InvalidExpireError, toCommand } from '../client-request.js';
import type { KvCommand, KvOp, TxnBranch, TxnCompare } from '../command.js';
import type { KvRequest, KvResponse } from '../request.js';
import type { TxnStepResult } from '../result.js';
import { TxnRefusedError } from './errors.js';
import { type TxnPlan, planTxn } from './plan.js';
import type { TxnCoordinatorOptions, TxnReply, TxnRequest, TxnStepEvent } from './types.js';

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
  private readonly o: Required<Omit<TxnCoordinatorOptions, 'wallClock' | 'observe'>> & {
    wallClock: () => number;
    observe: (e: TxnStepEvent) => void;
  };
  private nextSeq = 1;
  /** Sequence numbers sent and not yet answered: the session's low-water mark stays below the least. */
  private readonly inFlight = new Set<number>();
  private counter = 0;
  /** Resolutions running after their transactions were answered. */
  private readonly background = new Set<Promise<void>>();

  constructor(opts: TxnCoordinatorOptions) {
    this.o = { ...DEFAULTS, wallClock: Date.now, observe: () => {}, ...opts };
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
    const fast = fastPath(plan);
    if (fast !== undefined) {
      const res = await this.step(fast.partition, fast.exec);
      if (res.type === 'list') {
        return res.items === null
          ? { type: 'txn', txn: '', succeeded: false, results: [] }
          : { type: 'txn', txn: '', succeeded: true, results: res.items };
      }
      if (res.type === 'failure' || res.type === 'error') return res;
      return { type: 'error', message: `ERR the transaction's EXEC answered ${res.type}` };
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
    if (prepared.some((p) => p.kind !== 'prepared')) {
      // Nothing is committed, and never will be: only this coordinator commits, and it will not. The record
      // is aborted (a tombstone if its prepare is still on its way) and the intents laid are dropped.
      const abort = await this.step(recordPartition, { op: 'txnAbort', txn: id, coordinator: true, now: 0 });
      const laid = parts.filter((_, i) => prepared[i]!.kind === 'prepared' || prepared[i]!.kind === 'unknown');
      const known = prepared.every((p) => p.kind !== 'unknown');
      if (abort.type === 'txn' && abort.step.outcome === 'aborted') this.finish(id, plan, laid, 'abort', known);
      const error = prepared.find((p) => p.kind === 'error');
      if (error?.kind === 'error') return { type: 'error', message: error.message };
      const unknown = prepared.find((p) => p.kind === 'unknown');
      if (unknown?.kind === 'unknown') return notApplied(id, unknown.failure);
      if (abort.type === 'failure') return notApplied(id, abort);
      return 'conflict';
    }
    const steps = prepared.map((p) => (p as Extract<Prepared, { kind: 'prepared' }>).step);
    const wanted: TxnBranch = steps.every((s) => s.held) ? 'success' : 'failure';
    let outcome = await this.step(recordPartition, { op: 'txnCommit', txn: id, branch: wanted, now: 0 });
    if (outcome.type === 'failure') {
      // The commit's outcome is unknown: settle it by aborting; the record partition's log orders the two.
      const again = await this.step(recordPartition, { op: 'txnAbort', txn: id, coordinator: true, now: 0 });
      if (again.type !== 'failure') outcome = again;
    }
    if (outcome.type !== 'txn') return unreachable(outcome, id);
    const s = outcome.step;
    if (s.outcome === 'aborted') {
      // Aborted by a resolver past the deadline (this coordinator was slow), or by itself above: nothing applied.
      this.finish(id, plan, parts, 'abort', true);
      return 'conflict';
    }
    if (s.outcome !== 'committed') return unreachable(outcome, id);
    this.finish(id, plan, parts, s.branch, true);
    return { type: 'txn', txn: id, succeeded: s.branch === 'success', results: plan.merge(s.branch, steps) };
  }

  /** Resolves `parts` with `branch` in the background, then forgets the record when all did and `forget`. */
  private finish(
    id: string,
    plan: TxnPlan,
    parts: TxnPlan['parts'],
    branch: TxnBranch | 'abort',
    forget: boolean,
  ): void {
    const job = (async () => {
      const done = await Promise.all(
        parts.map((p) => this.step(p.partition, { op: 'txnResolve', txn: id, branch, now: 0 })),
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
    const event = { txn: 'txn' in op ? op.txn : '', step: op.op as TxnStepEvent['step'], partition };
    this.o.observe({ ...event, phase: 'send' });
    try {
      return await this.o.partition(partition).execute(req);
    } catch (err) {
      return { type: 'failure', code: ErrorCode.Internal, message: (err as Error).message };
    } finally {
      this.inFlight.delete(seq);
      this.o.observe({ ...event, phase: 'answer' });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.o.clock.setTimeout(r, Math.max(0, Math.round(ms))));
  }
}

/**
 * The one-entry form of a transaction on one partition, when it has one: its
 * comparisons are all mod revision equalities (WATCH) and it has no failure branch,
 * so it is an `exec` (nil when a revision changed).
 */
function fastPath(plan: TxnPlan): { partition: number; exec: KvOp } | undefined {
  const [part, ...more] = plan.parts;
  if (part === undefined || more.length > 0 || part.failure.length > 0 || !plan.whole) return undefined;
  const watch: { key: Uint8Array; revision: number }[] = [];
  for (const c of part.compares) {
    if (c.compare.kind !== 'modRevision' || (c.compare.op ?? '=') !== '=') return undefined;
    watch.push({ key: c.key, revision: c.compare.value });
  }
  return { partition: part.partition, exec: { op: 'exec', ops: part.success, watch, now: 0 } };
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

/** The answer when a partition could not be reached before the commit: nothing was applied. */
function notApplied(id: string, f: Failure): TxnReply {
  return {
    type: 'failure',
    code: f.code === ErrorCode.Timeout ? ErrorCode.Timeout : ErrorCode.Unavailable,
    message: `transaction ${id} was not applied: a partition could not be reached (${f.code}: ${f.message}); retry`,
  };
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
