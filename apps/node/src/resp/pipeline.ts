import type { KvClientRequest, KvResponse } from '@cohort/kv';
import type { KvApi, ReadApi } from '../kv-api.js';
import { type Planned, type Session, errorOf, needsBarrier, planCommand } from './commands.js';
import { type ReadMode, executeWithModes, readModeOf } from './read-modes.js';
import type { Protocol, Reply } from './reply.js';

/** How much one connection may have queued and in flight. */
export interface PipelineLimits {
  /** Commands at most in one batch handed to the KV service. */
  maxBatch: number;
  /** Argument bytes at most in one batch (a larger command goes alone). */
  maxBatchBytes: number;
  /** Commands queued or in flight at which the connection stops reading; it reads again below half. */
  maxPending: number;
  /** Argument bytes queued or in flight at which the connection stops reading; it reads again below half. */
  maxPendingBytes: number;
}

export const DEFAULT_PIPELINE_LIMITS: PipelineLimits = {
  maxBatch: 1024,
  maxBatchBytes: 1024 * 1024,
  maxPending: 4096,
  maxPendingBytes: 16 * 1024 * 1024,
};

/** Options of {@link Pipeline}. */
export interface PipelineOptions {
  api: KvApi;
  session: Session;
  /** Takes the replies of a batch, in the order of its commands. */
  reply(replies: Reply[], protos: Protocol[]): void;
  /** The connection should stop reading (`true`) or read again (`false`). */
  pause(paused: boolean): void;
  /** Whether replies may be sent now; when false, no batch starts until {@link Pipeline.kick}. @default always */
  writable?(): boolean;
  /** The reply to QUIT was handed over: close the connection. */
  close?(): void;
  limits?: Partial<PipelineLimits>;
  /** Stale and lease reads (READONLY, `raft.leaseReads`); without it every read is linearizable. */
  reads?: ReadApi;
  /** Whether the leader serves reads under its lease (`raft.leaseReads`). @default false */
  leaseReads?: boolean;
  /**
   * Resolves when one of `keys` may have changed, or after `ms` at most, for
   * blocked commands (BLPOP ...); it may resolve early. @default a poll every 100 ms
   */
  waitForKeys?(keys: Buffer[], ms: number): Promise<void>;
}

interface Queued {
  args: Buffer[];
  bytes: number;
}

/**
 * The commands of one connection, run in order and answered in order, with
 * as many in flight as the client pipelines. Whatever arrived while a batch
 * ran is the next batch: its commands are planned in order (each write
 * taking its session's next sequence number) and their KV requests go to
 * {@link KvApi.executeAll} together, so a pipeline's writes share Raft rounds
 * and each read still sees exactly the writes before it. One batch is in
 * flight at a time: the session's low-water mark rises to the last write of
 * a batch once all its replies are back. Reading pauses while the queue is
 * over its bounds, so a client cannot queue unbounded work.
 */
export class Pipeline {
  private readonly limits: PipelineLimits;
  private queue: Queued[] = [];
  /** Commands (and their bytes) queued or in the batch in flight. */
  private pending = 0;
  private pendingBytes = 0;
  private running = false;
  private paused = false;
  private stopped = false;
  private kickQueued = false;
  /** Set by {@link refuseQueued}: the reply every command not started yet gets. */
  private refusal: Reply | undefined;
  private idle: (() => void)[] = [];

  constructor(private readonly opts: PipelineOptions) {
    this.limits = { ...DEFAULT_PIPELINE_LIMITS, ...opts.limits };
  }

  /** Commands queued or in flight. */
  get size(): number {
    return this.pending;
  }

  /** Queues a parsed command; ignored once QUIT was planned or the pipeline stopped. */
  push(args: Buffer[]): void {
    if (this.stopped || this.opts.session.closing) return;
    let bytes = 0;
    for (const a of args) bytes += a.length;
    this.queue.push({ args, bytes });
    this.pending++;
    this.pendingBytes += bytes;
    if (!this.paused && (this.pending >= this.limits.maxPending || this.pendingBytes >= this.limits.maxPendingBytes)) {
      this.paused = true;
      this.opts.pause(true);
    }
    // The commands parsed from one read arrive in one synchronous run: they start as one batch.
    if (!this.kickQueued) {
      this.kickQueued = true;
      queueMicrotask(() => {
        this.kickQueued = false;
        this.kick();
      });
    }
  }

  /** Resolves once every command pushed so far is answered (or dropped by {@link stop}). */
  drained(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Drops what was not started yet: the connection is gone. A batch in flight completes, its replies unsent. */
  stop(): void {
    this.stopped = true;
    this.settle(
      this.queue.length,
      this.queue.reduce((n, q) => n + q.bytes, 0),
    );
    this.queue = [];
  }

  /**
   * The node is stopping: the batch in flight completes and is answered as
   * usual; every command queued after it, and any pushed later, is answered
   * `reply` (in order) without running.
   */
  refuseQueued(reply: Reply): void {
    this.refusal = reply;
    this.kick();
  }

  /** Starts the next batch when none is in flight (call when the connection may be written again). */
  kick(): void {
    if (this.refusal !== undefined && !this.running && !this.stopped && this.queue.length > 0) {
      const refused = this.queue;
      this.queue = [];
      this.finish(
        refused.map(() => ({ reply: this.refusal! })),
        [],
        refused.reduce((n, q) => n + q.bytes, 0),
        refused.map(() => this.opts.session.proto),
      );
      return;
    }
    while (!this.running && !this.stopped && this.queue.length > 0 && (this.opts.writable?.() ?? true)) {
      const batch = this.take();
      const planned: Planned[] = [];
      // The protocol each reply is written in: HELLO changes it from its own reply on.
      const protos: Protocol[] = [];
      const requests: KvClientRequest[] = [];
      const modes: ReadMode[] = [];
      let bytes = 0;
      for (const [i, q] of batch.entries()) {
        if (i > 0 && needsBarrier(q.args, this.opts.session)) {
          // EXEC needs the revisions its WATCH is reading: it starts the next batch.
          this.queue.unshift(...batch.slice(i));
          batch.length = i;
          break;
        }
        const p = planCommand(q.args, this.opts.api, this.opts.session);
        planned.push(p);
        protos.push(this.opts.session.proto);
        bytes += q.bytes;
        if ('request' in p) {
          requests.push(p.request);
          modes.push(readModeOf(p.request, this.opts.session.readOnly === true, this.opts.leaseReads === true));
          if (p.block) {
            // A blocking command runs alone: what follows it waits for its reply.
            this.queue.unshift(...batch.slice(i + 1));
            batch.length = i + 1;
            break;
          }
        }
        if (this.opts.session.closing) break;
      }
      if (this.opts.session.closing) {
        // Nothing after QUIT runs.
        const dropped = [...batch.slice(planned.length), ...this.queue];
        this.queue = [];
        this.settle(
          dropped.length,
          dropped.reduce((n, q) => n + q.bytes, 0),
        );
      }
      if (requests.length === 0) {
        this.finish(planned, [], bytes, protos);
        continue;
      }
      this.running = true;
      const only = planned[0]!;
      if (planned.length === 1 && 'request' in only && only.block) {
        void this.block(batch[0]!, only, bytes, protos);
        continue;
      }
      const reads = this.opts.reads;
      (reads ? executeWithModes(this.opts.api, reads, requests, modes) : this.opts.api.executeAll(requests)).then(
        (answers) => this.finish(planned, answers, bytes, protos),
        (err: unknown) =>
          this.finish(
            planned,
            requests.map(() => err),
            bytes,
            protos,
          ),
      );
    }
  }

  /**
   * Runs a blocking command (see `Blocking`): its request, then, while it
   * answers nil before its deadline, a wait for a change to its keys (or a
   * poll) and a linearizable EXISTS of them, and the request again (planned
   * anew, as the connection's next write) once one of them exists.
   */
  private async block(q: Queued, first: Planned, bytes: number, protos: Protocol[]): Promise<void> {
    if (!('request' in first) || first.block === undefined) throw new Error('not a blocking command');
    const { keys, deadline } = first.block;
    let planned: Planned = first;
    for (;;) {
      const run = planned as Planned & { request: KvClientRequest };
      let answer: KvResponse | unknown;
      try {
        [answer] = await this.opts.api.executeAll([run.request]);
      } catch (err) {
        answer = err;
      }
      const nothing = isResponse(answer) && answer.type === 'nil';
      for (;;) {
        const left = deadline - performance.now();
        if (nothing && this.refusal !== undefined && !this.stopped) {
          // The node is shutting down: the command took nothing, and says so.
          this.finish([{ reply: this.refusal }], [], bytes, protos);
          return;
        }
        if (!nothing || left <= 0 || this.stopped) {
          this.finish([run], [answer], bytes, protos);
          return;
        }
        await (this.opts.waitForKeys ?? pollWait)(keys, left);
        if (this.stopped || this.refusal !== undefined || deadline - performance.now() <= 0) continue;
        // Look before writing again: an EXISTS costs no log entry.
        const seen = await this.opts.api.execute({ kind: 'read', op: 'exists', keys }).catch(() => undefined);
        if (seen?.type === 'int' && seen.value === 0n) continue;
        break;
      }
      planned = planCommand(q.args, this.opts.api, this.opts.session);
      if (!('request' in planned)) {
        this.finish([planned], [], bytes, protos);
        return;
      }
    }
  }

  /** The next batch: queued commands up to the batch bounds, at least one. */
  private take(): Queued[] {
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < this.limits.maxBatch) {
      const b = this.queue[n]!.bytes;
      if (n > 0 && bytes + b > this.limits.maxBatchBytes) break;
      bytes += b;
      n++;
    }
    return this.queue.splice(0, n);
  }

  /** Hands over the replies of a batch, raises the low-water mark, and starts the next batch. */
  private finish(planned: Planned[], answers: (KvResponse | unknown)[], bytes: number, protos: Protocol[]): void {
    const replies: Reply[] = [];
    let k = 0;
    for (const p of planned) {
      if ('reply' in p) {
        replies.push(p.reply);
        continue;
      }
      const answer = answers[k++];
      try {
        replies.push(answer instanceof Error || !isResponse(answer) ? errorOf(answer) : p.answer(answer));
      } catch (err) {
        replies.push(errorOf(err));
      }
    }
    // Every write planned so far was in this batch or an earlier one: all are answered now.
    const s = this.opts.session.writes;
    s.lowWater = s.seq;
    this.running = false;
    this.settle(planned.length, bytes);
    if (!this.stopped) {
      this.opts.reply(replies, protos);
      if (this.opts.session.closing) {
        this.stopped = true;
        this.opts.close?.();
      }
    }
    this.kick();
  }

  private settle(commands: number, bytes: number): void {
    this.pending -= commands;
    this.pendingBytes -= bytes;
    if (
      this.paused &&
      !this.stopped &&
      this.pending < this.limits.maxPending / 2 &&
      this.pendingBytes < this.limits.maxPendingBytes / 2
    ) {
      this.paused = false;
      this.opts.pause(false);
    }
    if (this.pending === 0) {
      const idle = this.idle;
      this.idle = [];
      for (const resolve of idle) resolve();
    }
  }
}

/** How long a blocked command waits between looks when nothing tells it of changes to its keys. */
const POLL_MS = 100;

function pollWait(_keys: Buffer[], ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.min(ms, POLL_MS)));
}

function isResponse(x: unknown): x is KvResponse {
  return typeof x === 'object' && x !== null && typeof (x as { type?: unknown }).type === 'string';
}
