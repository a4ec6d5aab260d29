import { statfsSync } from 'node:fs';
import { ErrorCode, type Logger } from '@cohort/core';
import type { KvClientRequest, KvResponse } from '@cohort/kv';
import type { WriteStall } from '@cohort/storage';
import type { TxnRunner } from './cross-partition-txn.js';
import type { KvApi } from './kv-api.js';

/** Free bytes below which a node's disk counts as full: what is left is kept for replication and compaction. */
export const DISK_RESERVE_BYTES = 64 * 1024 * 1024;

const CHECK_MS = 500;

/** Options of {@link DiskGuard}. */
export interface DiskGuardOptions {
  dataDir: string;
  logger: Logger;
  /** Says the disk is full whatever statfs reports (the fault hook of fault tests). */
  forcedFull?: () => boolean;
  /**
   * Whether the store's commits wait for disk space now (a commit failed with
   * SQLITE_FULL and is retried): the disk is full whatever statfs reports.
   * Call {@link DiskGuard.check} when it changes, so writes are refused at once.
   */
  writeStall?: () => WriteStall | undefined;
  /** Called when the disk becomes full and every check while it stays full (a leader hands its leadership away). */
  onFull?: () => void;
  /** @default DISK_RESERVE_BYTES */
  reserveBytes?: number;
}

/**
 * Watches the free space of the data directory's file system, and the
 * store's commits. While the space is below the reserve, or a commit waits
 * for space (SQLite's "database or disk is full": the store rolled it back
 * and retries it, in order, until it goes through), the node is degraded: it
 * refuses client writes with a clear error and keeps serving reads.
 */
export class DiskGuard {
  private full = false;
  private why = '';
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(private readonly opts: DiskGuardOptions) {
    this.check();
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  /** Whether the disk counts as full now. */
  get isFull(): boolean {
    return this.full;
  }

  /** Why the disk counts as full ('' when it does not). */
  get reason(): string {
    return this.full ? this.why : '';
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The answer to a client write while the disk is full. */
  private refusal(): Extract<KvResponse, { type: 'failure' }> {
    return {
      type: 'failure',
      code: ErrorCode.Unavailable,
      message: `disk full: ${this.why}; this node refuses writes until space is freed (reads are served; other nodes take writes)`,
    };
  }

  /** `runner` with transactions that write refused while the disk is full; those that only read pass. */
  guardTxn(runner: TxnRunner): TxnRunner {
    return {
      run: (req) =>
        this.full && [...req.success, ...req.failure].some((w) => w.op !== 'read')
          ? Promise.resolve(this.refusal())
          : runner.run(req),
    };
  }

  /** `api` with client writes refused while the disk is full; reads pass. */
  guard(api: KvApi): KvApi {
    const refusal = (): KvResponse => this.refusal();
    const refuse = (req: KvClientRequest): KvResponse | undefined =>
      this.full && req.kind !== 'read' ? refusal() : undefined;
    return {
      execute: (req) => {
        const r = refuse(req);
        return r ? Promise.resolve(r) : api.execute(req);
      },
      executeAll: async (reqs) => {
        if (!this.full) return api.executeAll(reqs);
        // Refused writes answer in place; the reads of the pipeline are still served, in order.
        const reads = reqs.filter((r) => refuse(r) === undefined);
        const answers = reads.length > 0 ? await api.executeAll(reads) : [];
        let k = 0;
        return reqs.map((r) => refuse(r) ?? (answers[k++] as KvResponse));
      },
      status: () => api.status(),
    };
  }

  /** Checks the disk now (on a timer, and when the store's commits start or stop waiting for space). */
  check(): void {
    const forced = this.opts.forcedFull?.() === true;
    const stall = this.opts.writeStall?.();
    const reserve = this.opts.reserveBytes ?? DISK_RESERVE_BYTES;
    let free = Number.POSITIVE_INFINITY;
    if (!forced && stall === undefined) {
      try {
        const s = statfsSync(this.opts.dataDir);
        free = s.bavail * s.bsize;
      } catch {
        // Not measurable here: count it as not full (a commit that finds the disk full says so).
      }
    }
    const full = forced || stall !== undefined || free < reserve;
    if (full) {
      this.why =
        stall !== undefined
          ? `the database in ${this.opts.dataDir} cannot grow (${stall.reason}), its waiting commits are retried in order`
          : forced
            ? `the disk of ${this.opts.dataDir} counts as full (fault injection)`
            : `the file system of ${this.opts.dataDir} has less than ${Math.round(reserve / 1048576)} MiB free`;
    }
    if (full !== this.full) {
      this.full = full;
      if (full)
        this.opts.logger.warn('disk full: refusing writes, serving reads', {
          dataDir: this.opts.dataDir,
          reason: this.why,
        });
      else this.opts.logger.warn('disk space is back: taking writes again', { dataDir: this.opts.dataDir });
    }
    if (full) this.opts.onFull?.();
  }
}
