import {
  type Clock,
  CodecError,
  type GroupId,
  type LogIndex,
  type Logger,
  type NodeId,
  type Transport,
  clockSignal,
  silentLogger,
} from '@cohort/core';

/** The protocol replicas answer digest requests on. */
export const DIGEST_PROTOCOL = '/cohort/kv-digest/1';

/** The wire format of {@link DIGEST_PROTOCOL}'s frames; a frame of another version is refused. */
const DIGEST_WIRE_VERSION = 1;
const MAX_GROUP_BYTES = 256;
const MAX_DIGEST_BYTES = 1024;

/** What a replica holds to answer a digest request. */
export interface DigestSource {
  /** The index of the last entry applied here. */
  appliedIndex(): LogIndex;
  /** The digest (hex) of the rows recorded when the checksum entry at `index` applied here; undefined if none was. */
  digestAt(index: LogIndex): string | undefined;
  /** Whether the digest at `index` is still being computed (a large partition is hashed over many turns). */
  digestPending?(index: LogIndex): boolean;
  /** Why computing the digest at `index` failed here, if it did. */
  digestFailure?(index: LogIndex): string | undefined;
}

/** The key range a check covered (the whole group today: `''` to `''` is every key). */
export interface KeyRange {
  start: string;
  end: string;
}

/** One replica's answer: its digest in hex, or why it has none. */
export interface ReplicaDigest {
  node: NodeId;
  digest: string | null;
  /** Why `digest` is null (unreachable, not applied in time, no digest at that index). */
  error?: string;
}

/** The outcome of one consistency check. */
export interface ConsistencyReport {
  group: GroupId;
  /** The log index of the checksum entry every replica digested at. */
  index: LogIndex;
  keyRange: KeyRange;
  replicas: ReplicaDigest[];
  /** `consistent`: every replica answered the same digest; `inconsistent`: two differ; `incomplete`: some did not answer. */
  verdict: 'consistent' | 'inconsistent' | 'incomplete';
  /** Wall-clock Unix milliseconds when the check finished. */
  checkedAt: number;
}

/**
 * Answers the digest requests other nodes send on `transport`, each by the
 * checker of its group that `checkerOf` names. One node registers this once
 * for all the groups it checks.
 */
export function serveDigestRequests(
  transport: Transport,
  checkerOf: (group: string) => Pick<ConsistencyChecker, 'answerRequest'> | undefined,
): void {
  transport.handleRequest(DIGEST_PROTOCOL, async (_from, frame) => {
    try {
      const req = decodeDigestRequest(frame);
      const checker = checkerOf(req.group);
      if (checker === undefined) return encodeDigestResponse(undefined, `group ${req.group} is not here`);
      return checker.answerRequest(req.index, req.waitMs);
    } catch (err) {
      return encodeDigestResponse(undefined, (err as Error).message);
    }
  });
}

/** Options of {@link ConsistencyChecker}. */
export interface ConsistencyCheckerOptions {
  group: GroupId;
  transport: Transport;
  clock: Clock;
  /** This replica's digests. */
  local: DigestSource;
  /** The group's replicas, this node included. */
  replicas: () => NodeId[];
  /** Proposes a checksum command through the group (from any node); resolves with its log index. */
  proposeChecksum: () => Promise<LogIndex>;
  /**
   * How long a replica may take to apply the checksum entry and hash its rows
   * (about 5 s per million keys) before it counts as not answering.
   * @default 60000
   */
  waitMs?: number;
  /**
   * How long one digest request asks a replica to wait for its digest before it answers that it has
   * none yet; the checker asks again until `waitMs` ran out. Below the transport's request timeout
   * (which ends any one request), so a digest that takes longer than it still arrives. @default 2000
   */
  requestWaitMs?: number;
  /** Wall-clock Unix milliseconds. @default Date.now */
  wallClock?: () => number;
  logger?: Logger;
}

/** Encodes a digest request: version, group, index, how long to wait. */
export function encodeDigestRequest(group: GroupId, index: LogIndex, waitMs: number): Uint8Array {
  const g = Buffer.from(group, 'utf8');
  if (g.length > MAX_GROUP_BYTES) throw new CodecError(`group id of ${g.length} bytes is over ${MAX_GROUP_BYTES}`);
  const out = Buffer.alloc(1 + 2 + g.length + 8 + 4);
  out.writeUInt8(DIGEST_WIRE_VERSION, 0);
  out.writeUInt16BE(g.length, 1);
  g.copy(out, 3);
  out.writeBigUInt64BE(BigInt(index), 3 + g.length);
  out.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(waitMs))), 11 + g.length);
  return out;
}

/** Decodes a digest request; throws `CodecError` on a malformed frame or another version. */
export function decodeDigestRequest(frame: Uint8Array): { group: GroupId; index: LogIndex; waitMs: number } {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b.length < 3) throw new CodecError(`digest request of ${b.length} bytes is too short`);
  if (b.readUInt8(0) !== DIGEST_WIRE_VERSION) {
    throw new CodecError(`digest request has version ${b.readUInt8(0)}; this node reads ${DIGEST_WIRE_VERSION}`);
  }
  const n = b.readUInt16BE(1);
  if (n > MAX_GROUP_BYTES || b.length !== 3 + n + 12)
    throw new CodecError(`digest request of ${b.length} bytes is malformed`);
  return {
    group: b.subarray(3, 3 + n).toString('utf8'),
    index: Number(b.readBigUInt64BE(3 + n)),
    waitMs: b.readUInt32BE(11 + n),
  };
}

/** The answer's flag: no digest here (the body says why). */
const ANSWER_NONE = 0;
/** The answer's flag: the body is the digest. */
const ANSWER_DIGEST = 1;
/** The answer's flag: no digest yet (still applying or hashing; the body says which): ask again. */
const ANSWER_NOT_YET = 2;

/**
 * Encodes a digest answer: version, flag, then the digest or why there is none; with `notYet`, the
 * replica may still have one later (a node that predates the flag reads it as none).
 */
export function encodeDigestResponse(digest: string | undefined, error: string, notYet = false): Uint8Array {
  const body = Buffer.from((digest ?? error).slice(0, MAX_DIGEST_BYTES), 'utf8');
  const out = Buffer.alloc(2 + body.length);
  out.writeUInt8(DIGEST_WIRE_VERSION, 0);
  out.writeUInt8(digest ? ANSWER_DIGEST : notYet ? ANSWER_NOT_YET : ANSWER_NONE, 1);
  body.copy(out, 2);
  return out;
}

/** Decodes a digest answer; throws `CodecError` on a malformed frame or another version. */
export function decodeDigestResponse(frame: Uint8Array): { digest?: string; error?: string; notYet?: boolean } {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b.length < 2 || b.length > 2 + MAX_DIGEST_BYTES) throw new CodecError(`digest answer of ${b.length} bytes`);
  if (b.readUInt8(0) !== DIGEST_WIRE_VERSION) {
    throw new CodecError(`digest answer has version ${b.readUInt8(0)}; this node reads ${DIGEST_WIRE_VERSION}`);
  }
  const body = b.subarray(2);
  const flag = b.readUInt8(1);
  if (flag === ANSWER_DIGEST) return { digest: body.toString('utf8') };
  return flag === ANSWER_NOT_YET ? { error: body.toString('utf8'), notYet: true } : { error: body.toString('utf8') };
}

/**
 * Checks that the replicas of a group agree, as CockroachDB's consistency
 * checker does: a checksum command goes through the log, so every replica
 * digests its rows at the same index; the checker then asks each replica
 * for that digest and compares. Any node may run a check. A mismatch is
 * logged at error level and counted; the last report is kept for status.
 */
export class ConsistencyChecker {
  private readonly log: Logger;
  private readonly waitMs: number;
  private readonly requestWaitMs: number;
  private readonly wallClock: () => number;
  /** The last check's report, if any ran. */
  last: ConsistencyReport | undefined;
  /** The last report whose verdict was `inconsistent`. */
  lastMismatch: ConsistencyReport | undefined;
  /** Checks whose verdict was `inconsistent`. */
  mismatches = 0;
  /** Checks run. */
  checks = 0;

  constructor(private readonly opts: ConsistencyCheckerOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'consistency', group: opts.group });
    this.waitMs = opts.waitMs ?? 60_000;
    this.requestWaitMs = Math.min(opts.requestWaitMs ?? 2_000, this.waitMs);
    this.wallClock = opts.wallClock ?? Date.now;
  }

  /** Answers other nodes' digest requests for this group (the only group checked on this transport). */
  start(): void {
    serveDigestRequests(this.opts.transport, (group) => (group === this.opts.group ? this : undefined));
  }

  /** Answers a digest request for this group: this replica's digest at `index`, waiting up to `waitMs` for it. */
  answerRequest(index: LogIndex, waitMs: number): Promise<Uint8Array> {
    return this.answer(index, Math.min(waitMs, this.waitMs));
  }

  /** Runs one check: proposes a checksum, gathers every replica's digest at its index, compares. */
  async check(): Promise<ConsistencyReport> {
    const started = this.opts.clock.now();
    const index = await this.opts.proposeChecksum();
    const replicas = await Promise.all(this.opts.replicas().map((node) => this.digestOf(node, index)));
    const found = new Set(replicas.flatMap((r) => (r.digest === null ? [] : [r.digest])));
    const verdict =
      found.size > 1 ? 'inconsistent' : replicas.every((r) => r.digest !== null) ? 'consistent' : 'incomplete';
    const report: ConsistencyReport = {
      group: this.opts.group,
      index,
      keyRange: { start: '', end: '' },
      replicas,
      verdict,
      checkedAt: this.wallClock(),
    };
    this.checks++;
    this.last = report;
    if (verdict === 'inconsistent') {
      this.mismatches++;
      this.lastMismatch = report;
      this.log.error('replicas disagree: their rows differ at the same log index', {
        index,
        keyRange: report.keyRange,
        digests: Object.fromEntries(replicas.map((r) => [r.node, r.digest])),
      });
    } else if (verdict === 'incomplete') {
      this.log.warn('consistency check incomplete: some replicas did not answer', {
        index,
        ms: this.opts.clock.now() - started,
        missing: replicas.filter((r) => r.digest === null).map((r) => `${r.node}: ${r.error}`),
      });
    } else {
      this.log.info('consistency check passed: every replica has the same rows', {
        index,
        ms: this.opts.clock.now() - started,
      });
    }
    return report;
  }

  private async digestOf(node: NodeId, index: LogIndex): Promise<ReplicaDigest> {
    const deadline = this.opts.clock.now() + this.waitMs;
    for (;;) {
      let res: ReturnType<typeof decodeDigestResponse>;
      try {
        res = decodeDigestResponse(await this.ask(node, index, Math.max(0, deadline - this.opts.clock.now())));
      } catch (err) {
        return { node, digest: null, error: `unreachable: ${(err as Error).message}` };
      }
      if (res.digest !== undefined) return { node, digest: res.digest };
      // Still applying or hashing: ask again while the check's wait lasts.
      if (res.notYet === true && this.opts.clock.now() < deadline) continue;
      return { node, digest: null, error: res.error ?? 'no digest' };
    }
  }

  /** One digest request to `node`, asking it to wait up to `leftMs` (at most `requestWaitMs`) for its digest. */
  private async ask(node: NodeId, index: LogIndex, leftMs: number): Promise<Uint8Array> {
    const waitMs = Math.min(leftMs, this.requestWaitMs);
    if (node === this.opts.transport.self) return this.answer(index, waitMs);
    const timer = clockSignal(this.opts.clock, waitMs + 1000);
    try {
      return await this.opts.transport.request(
        node,
        DIGEST_PROTOCOL,
        encodeDigestRequest(this.opts.group, index, waitMs),
        { signal: timer.signal },
      );
    } finally {
      timer.clear();
    }
  }

  /** This replica's digest at `index`, waiting up to `waitMs` for it to apply that far, as an answer frame. */
  private async answer(index: LogIndex, waitMs: number): Promise<Uint8Array> {
    const deadline = this.opts.clock.now() + waitMs;
    const local = this.opts.local;
    while (
      (local.appliedIndex() < index || local.digestPending?.(index) === true) &&
      this.opts.clock.now() < deadline
    ) {
      await new Promise<void>((r) => this.opts.clock.setTimeout(r, 10));
    }
    const applied = local.appliedIndex();
    if (applied < index) return encodeDigestResponse(undefined, `applied only up to ${applied} of ${index}`, true);
    if (local.digestPending?.(index) === true) {
      return encodeDigestResponse(undefined, `still computing the digest at ${index}`, true);
    }
    const digest = local.digestAt(index);
    if (digest !== undefined) return encodeDigestResponse(digest, '');
    const failure = local.digestFailure?.(index);
    if (failure !== undefined) return encodeDigestResponse(undefined, `digest at ${index} failed: ${failure}`);
    // A replica restored from a snapshot past the index never digested it: it has nothing to compare.
    return encodeDigestResponse(undefined, `no digest recorded at ${index}`);
  }
}
