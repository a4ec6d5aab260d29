import { randomUUID } from 'node:crypto';
import type { Clock } from '@cohort/core';
import {
  type ClientSession,
  type KvClientRequest,
  type KvClientWrite,
  type KvResponse,
  type SlotMap,
  isReservedKey,
} from '@cohort/kv';
import type { KvApi } from './kv-api.js';
import { writeKeys } from './partitioned-kv.js';

/** How many pipelined writes one merged entry may hold, and how many bytes of keys, values and arguments. */
export interface MergeLimits {
  maxWrites: number;
  maxBytes: number;
}

/**
 * 64 writes or 256 KiB: a pipeline of `-P 16` merges whole, and a merged entry stays far below
 * the size one command may reach (`--max-command-bytes`); a write past 256 KiB goes alone.
 */
export const DEFAULT_MERGE_LIMITS: MergeLimits = { maxWrites: 64, maxBytes: 256 * 1024 };

/** The writes an EXEC may hold whose answer is the one they get alone (no keyless, internal or nested ones). */
const MERGEABLE: ReadonlySet<KvClientWrite['op']> = new Set([
  'set',
  'del',
  'incr',
  'mset',
  'append',
  'setrange',
  'getdel',
  'getex',
  'incrbyfloat',
  'rename',
  'copy',
  'expire',
  'persist',
  'collection',
]);

/**
 * Bytes of a write's keys (`keys`: its {@link writeKeys}, when the caller has them), values and arguments.
 * Every merged write is measured: no array is made to go through its fields.
 */
function writeBytes(w: KvClientWrite, keys: readonly Uint8Array[] = writeKeys(w)): number {
  let n = 0;
  for (const k of keys) n += k.byteLength;
  const f = w as unknown as Record<string, unknown>;
  n += bytesOf(f.value) + bytesOf(f.increment) + listBytes(f.values) + listBytes(f.args);
  if (w.op === 'cond' && w.action.kind === 'put') n += w.action.value.byteLength;
  return n;
}

function bytesOf(v: unknown): number {
  return v instanceof Uint8Array ? v.byteLength : 0;
}

function listBytes(list: unknown): number {
  let n = 0;
  if (Array.isArray(list)) for (const v of list) n += bytesOf(v);
  return n;
}

/** Relative deadlines this far off (about 35,000 years) or more go alone: their conversion may overflow. */
const FAR_MS = 2 ** 50;

/**
 * Whether `w`'s deadline keeps it out of an EXEC: an absolute one (EXPIREAT, SET ... PXAT, GETEX ...
 * EXAT), which an EXEC beside a relative one moves by the forwarding delay (`shifted` in the KV
 * service), while alone it stays as the client stated it; or a relative one so far off that turning it
 * into a deadline may fail, which fails the whole EXEC, while alone it fails only its own write.
 */
function deadlineAlone(w: KvClientWrite): boolean {
  let d: { kind: string; ms?: number };
  switch (w.op) {
    case 'set':
    case 'getex':
      d = w.expiry;
      break;
    case 'expire':
      d = w.deadline;
      break;
    case 'cond':
      if (w.action.kind === 'del') return false;
      d = w.action.expiry;
      break;
    default:
      return false;
  }
  if (d.kind === 'at') return true;
  return d.kind === 'in' && !(Number.isSafeInteger(d.ms) && Math.abs(d.ms as number) < FAR_MS);
}

type Write = Extract<KvClientRequest, { kind: 'write' }>;

/** What a write that may share an entry shares it by: its session's client and its keys' partition; and its bytes. */
interface Mergeable {
  client: string;
  partition: number;
  bytes: number;
}

/** A write that may share an entry: in a session, of a mergeable kind, its keys in one partition. */
function mergeable(req: KvClientRequest, slots: SlotMap): Mergeable | undefined {
  if (
    req.kind !== 'write' ||
    req.session === undefined ||
    req.scope !== undefined ||
    !MERGEABLE.has(req.write.op) ||
    deadlineAlone(req.write)
  ) {
    return undefined;
  }
  const keys = writeKeys(req.write);
  // A key of the transactions' reserved space is refused as the entry applies: the whole EXEC with it.
  if (keys.length === 0 || keys.some(isReservedKey)) return undefined;
  const partition = slots.partitionOfKey(keys[0]!);
  for (let i = 1; i < keys.length; i++) if (slots.partitionOfKey(keys[i]!) !== partition) return undefined;
  return { client: req.session.clientId, partition, bytes: writeBytes(req.write, keys) };
}

export interface MergeOptions {
  limits?: Partial<MergeLimits>;
  /** Counts pipelined writes proposed together (`writes` of them as `entries` entries). */
  onMerged?: (writes: number, entries: number) => void;
  /**
   * Runs a function once the event loop's current turn is done (the clock's
   * `defer`). With it, concurrent conditional writes without a session
   * (HTTP puts and deletes), and with `connectionSession` unpipelined writes
   * of several connections, share entries too; without it they go alone.
   */
  defer?: (fn: () => void) => void;
  /**
   * Counts concurrent writes proposed together: conditional writes without
   * a session (`sessioned` false), or writes of connection sessions (true).
   */
  onConcurrent?: (writes: number, entries: number, sessioned: boolean) => void;
  /**
   * Whether `session` is a connection's own (a RESP connection's): the node
   * hands out its sequence numbers and nobody sends one again once it was
   * answered. With it (and `defer`), single writes of such sessions share
   * entries with other connections' (in a session of the node's own; see
   * {@link ConcurrentWrites}). A session a client names (an HTTP
   * `Idempotency-Key`, which the client may send again) is never one.
   */
  connectionSession?: (session: ClientSession) => boolean;
  /**
   * How many entries (or lone writes) of one partition's concurrent writes
   * may be in flight at once: writes that arrive while that many are in
   * flight wait until one is answered and then go together, at the end of
   * that turn. 0: no bound, each turn's writes go at the end of the turn.
   * @default 1
   */
  maxInFlight?: number;
  /**
   * The longest a write waits for its partition's entries in flight (see
   * `maxInFlight`), in ms of `clock`: once the oldest of them is older than
   * this (a slow round, a leader lost), writes go at the end of their turn as
   * without the bound, each within its own request timeout. @default 100
   */
  maxHoldMs?: number;
  /** The clock of `maxHoldMs`; without one, a write waits for an entry in flight however long it takes. */
  clock?: Pick<Clock, 'now' | 'setTimeout'>;
}

/** The default of {@link MergeOptions.maxHoldMs}: ten times a busy round here, a fiftieth of a request's timeout. */
export const DEFAULT_MERGE_MAX_HOLD_MS = 100;

/**
 * The default of {@link MergeOptions.maxInFlight}: one entry of a partition's concurrent writes in
 * flight, the writes arriving meanwhile gathered into the next (tools/bench's README, twenty-third
 * session: 27 unpipelined `SET`s an entry at 50 connections instead of 16; on the means of alternated
 * runs, 8% less server CPU a `SET` and 13% less an HTTP put at 64 connections). Raft commits a partition's entries in log order, so an
 * entry sent while another is in flight is never answered before it; waiting for it costs the writes
 * gathered meanwhile one more round trip at most, which the saved CPU pays back on a busy node.
 */
export const DEFAULT_MERGE_IN_FLIGHT = 1;

/**
 * Wraps a {@link KvApi} so that consecutive writes of one pipeline (one
 * client session, one partition) are proposed as one log entry: an EXEC of
 * them in the session of the last, its list of answers handed back one per
 * write. Each write's answer is the one it gets alone; the writes apply
 * atomically, one after another, which is one of the orders the pipeline
 * allowed (nothing of another client's can come between writes the client
 * sent back to back without waiting for an answer). A failure of the
 * entry (no leader, a timeout) is every merged write's. Per write, this
 * saves what each log entry costs on every replica: a proposal, a log row
 * and its checksum, a decode, and a session's stored answer.
 *
 * Exactly-once holds because the merging happens here, where the session's
 * sequence numbers are handed out, before anything forwards or retries: a
 * retry sends the same EXEC with the same sequence number, and the numbers
 * of the other merged writes are never proposed. An EXEC is what every
 * version of the node applies, so a cluster in the middle of an upgrade
 * applies these entries alike.
 */
export function mergeWrites(api: KvApi, slots: SlotMap, opts: MergeOptions = {}): KvApi {
  const limits = { ...DEFAULT_MERGE_LIMITS, ...opts.limits };
  const maxInFlight = opts.maxInFlight ?? DEFAULT_MERGE_IN_FLIGHT;
  if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 0) {
    throw new RangeError(`merged writes: maxInFlight must be a whole number, 0 or more; got ${maxInFlight}`);
  }
  const maxHoldMs = opts.maxHoldMs ?? DEFAULT_MERGE_MAX_HOLD_MS;
  if (!(maxHoldMs >= 0 && Number.isFinite(maxHoldMs))) {
    throw new RangeError(`merged writes: maxHoldMs must be a number of ms, 0 or more; got ${maxHoldMs}`);
  }
  const hold: Hold = { maxInFlight, maxHoldMs, clock: opts.clock };
  const concurrent = opts.defer
    ? new ConcurrentWrites(api, slots, limits, opts.defer, opts.onConcurrent, opts.connectionSession, hold)
    : undefined;
  return {
    status: () => api.status(),
    execute: (req) => concurrent?.execute(req) ?? api.execute(req),
    async executeAll(reqs) {
      // A batch of one write (an unpipelined client's) may share an entry with other clients' writes.
      const one = reqs.length === 1 ? concurrent?.execute(reqs[0]!) : undefined;
      if (one !== undefined) return [await one];
      const info = reqs.map((r) => mergeable(r, slots));
      const sent: KvClientRequest[] = [];
      // How many of `reqs` each request sent stands for.
      const spans: number[] = [];
      for (let i = 0; i < reqs.length; ) {
        const first = info[i];
        let j = i + 1;
        if (first !== undefined) {
          let bytes = first.bytes;
          for (; j < reqs.length && j - i < limits.maxWrites; j++) {
            const next = info[j];
            if (next === undefined || next.partition !== first.partition || next.client !== first.client) break;
            bytes += next.bytes;
            if (bytes > limits.maxBytes) break;
          }
        }
        spans.push(j - i);
        if (j - i === 1) {
          sent.push(reqs[i++]!);
          continue;
        }
        // Every one of them was found mergeable: a write in a session.
        const run = reqs.slice(i, j) as Write[];
        i = j;
        sent.push({
          kind: 'write',
          write: { op: 'exec', writes: run.map((r) => r.write), watch: [] },
          session: { ...run[run.length - 1]!.session! },
        });
      }
      if (sent.length === reqs.length) return api.executeAll(reqs);
      const runs = spans.filter((n) => n > 1);
      opts.onMerged?.(
        runs.reduce((a, n) => a + n, 0),
        runs.length,
      );
      const answers = await api.executeAll(sent);
      const out: KvResponse[] = [];
      spans.forEach((n, k) => {
        const a = answers[k]!;
        if (n === 1) out.push(a);
        else if (a.type === 'list' && a.items !== null && a.items.length === n) out.push(...a.items);
        else for (let m = 0; m < n; m++) out.push(a);
      });
      return out;
    },
  };
}

/** A write waiting for the end of the turn to share an entry, with its answer's callbacks. */
interface Waiting {
  req: Write;
  bytes: number;
  resolve: (res: KvResponse) => void;
  reject: (err: unknown) => void;
}

/** How long writes wait for their partition's entries in flight (see {@link MergeOptions.maxInFlight}). */
interface Hold {
  maxInFlight: number;
  maxHoldMs: number;
  clock: Pick<Clock, 'now' | 'setTimeout'> | undefined;
}

/** Writes of one partition waiting to share an entry: conditional ones without a session, or connections' own. */
interface WaitingList {
  partition: number;
  sessioned: boolean;
  writes: Waiting[];
}

/**
 * Where a write that may share an entry with other clients' writes goes: a
 * conditional write without a session, or a mergeable write of a
 * connection's own session; its keys in one partition.
 */
function concurrentPartition(
  req: KvClientRequest,
  slots: SlotMap,
  connectionSession: ((session: ClientSession) => boolean) | undefined,
): { partition: number; sessioned: boolean; bytes: number } | undefined {
  if (req.kind !== 'write' || req.scope !== undefined) return undefined;
  if (req.session !== undefined) {
    if (connectionSession === undefined || !connectionSession(req.session)) return undefined;
    const m = mergeable(req, slots);
    return m && { partition: m.partition, sessioned: true, bytes: m.bytes };
  }
  if (req.write.op !== 'cond' || deadlineAlone(req.write) || isReservedKey(req.write.key)) return undefined;
  return { partition: slots.partitionOfKey(req.write.key), sessioned: false, bytes: writeBytes(req.write) };
}

/**
 * Concurrent writes of different clients, each on its own connection: HTTP
 * puts, deletes and compare-and-swaps (conditional writes without a
 * session), and unpipelined RESP writes (each in its connection's session).
 * While such writes are in flight, those that reach the node meanwhile wait:
 * until the end of the event loop's turn, and while the partition has as many
 * entries of such writes in flight as allowed (`maxInFlight`), until one of
 * them is answered or the oldest is older than `maxHoldMs`. Then those
 * waiting are proposed, at the end of that turn, as one EXEC per partition
 * and kind, and each is answered as it would be alone; one that finds none in
 * flight goes at once. They were all in flight at once, so
 * applying them one after another in one entry is one of the orders their
 * clients allowed; two writes of one key never share an entry (they would
 * share a mod revision, and a compare-and-swap on the revision the first was
 * answered with would then pass over the second). A failure of the entry is
 * every write's in it, as it would be for each write that had waited on the
 * same round alone.
 *
 * Conditional writes without a session share an EXEC without one (such a
 * write is not exactly-once alone either). Connections' writes share an EXEC
 * in a session of this node's own, with sequence numbers of its own, so the
 * entry applies once however often the node retries it while leadership
 * moves, as each write would in its connection's session; the sequence
 * numbers the connections gave those writes are never proposed, and nobody
 * sends them again (the connection is answered, and its session is the
 * node's). Each connection's next write carries its session on as before.
 */
class ConcurrentWrites {
  private waiting = new Map<number, WaitingList>();
  private scheduled = false;
  /**
   * When each partition's entries of such writes in flight (proposed, not answered yet) were sent,
   * oldest first (absent: none in flight).
   */
  private readonly inFlightOf = new Map<number, number[]>();
  /** A timer is set to send writes held past `maxHoldMs`. */
  private holdArmed = false;
  /** The session of this node's merged entries of connections' writes: its last sequence number, and those open. */
  private readonly session = { clientId: `merged:${randomUUID()}`, seq: 0, open: new Set<number>() };

  constructor(
    private readonly api: KvApi,
    private readonly slots: SlotMap,
    private readonly limits: MergeLimits,
    private readonly defer: (fn: () => void) => void,
    private readonly onMerged: ((writes: number, entries: number, sessioned: boolean) => void) | undefined,
    private readonly connectionSession: ((session: ClientSession) => boolean) | undefined,
    private readonly hold: Hold,
  ) {}

  /** Takes `req` if it may wait to share an entry; `undefined` when it goes alone. */
  execute(req: KvClientRequest): Promise<KvResponse> | undefined {
    const at = concurrentPartition(req, this.slots, this.connectionSession);
    if (at === undefined) return undefined;
    // Nothing of the kind in flight or waiting: a lone client's write (which waits for each answer
    // before it sends the next) goes at once, not a turn later. Writes that find others in flight wait.
    if (this.inFlightOf.size === 0 && !this.scheduled) return this.sent(at.partition, this.api.execute(req));
    return new Promise((resolve, reject) => {
      const slot = at.partition * 2 + (at.sessioned ? 1 : 0);
      let list = this.waiting.get(slot);
      if (!list) {
        list = { partition: at.partition, sessioned: at.sessioned, writes: [] };
        this.waiting.set(slot, list);
      }
      list.writes.push({ req: req as Write, bytes: at.bytes, resolve, reject });
      this.flushSoon();
    });
  }

  private flush(): void {
    this.scheduled = false;
    // Decided before any is sent: a partition's two kinds go together, not one held behind the other.
    const lists: WaitingList[] = [];
    let release = Number.POSITIVE_INFINITY;
    for (const [slot, list] of this.waiting) {
      const until = this.heldUntil(list.partition);
      if (until !== undefined) {
        release = Math.min(release, until);
        continue;
      }
      this.waiting.delete(slot);
      lists.push(list);
    }
    if (release < Number.POSITIVE_INFINITY) this.armHold(release);
    for (const list of lists) {
      let writes = 0;
      let entries = 0;
      for (const run of this.runs(list.writes)) {
        this.send(list.partition, run, list.sessioned);
        if (run.length > 1) {
          writes += run.length;
          entries++;
        }
      }
      if (entries > 0) this.onMerged?.(writes, entries, list.sessioned);
    }
  }

  /** `list` in runs within the limits, no key twice in one, in order of arrival. */
  private runs(list: Waiting[]): Waiting[][] {
    if (list.length === 1) return [list];
    const runs: Waiting[][] = [];
    let run: Waiting[] = [];
    let keys = new Set<string>();
    let bytes = 0;
    for (const w of list) {
      const mine = writeKeys(w.req.write).map((k) =>
        Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1'),
      );
      if (
        run.length > 0 &&
        (run.length >= this.limits.maxWrites || bytes + w.bytes > this.limits.maxBytes || mine.some((k) => keys.has(k)))
      ) {
        runs.push(run);
        run = [];
        keys = new Set();
        bytes = 0;
      }
      run.push(w);
      for (const k of mine) keys.add(k);
      bytes += w.bytes;
    }
    runs.push(run);
    return runs;
  }

  /**
   * Until when (in ms of the clock) `partition`'s writes wait, for its entries in flight (`Infinity`
   * without a clock); `undefined` when they go now.
   */
  private heldUntil(partition: number): number | undefined {
    const { maxInFlight, maxHoldMs, clock } = this.hold;
    const sent = this.inFlightOf.get(partition);
    if (maxInFlight === 0 || sent === undefined || sent.length < maxInFlight) return undefined;
    if (clock === undefined) return Number.POSITIVE_INFINITY;
    const until = (sent[0] as number) + maxHoldMs;
    return clock.now() < until ? until : undefined;
  }

  /** Sends the writes held past `maxHoldMs` at `at` (one timer at a time: each flush sets the next). */
  private armHold(at: number): void {
    const clock = this.hold.clock;
    if (clock === undefined || at === Number.POSITIVE_INFINITY || this.holdArmed) return;
    this.holdArmed = true;
    clock.setTimeout(
      () => {
        this.holdArmed = false;
        this.flushSoon();
      },
      Math.max(0, at - clock.now()),
    );
  }

  /** Runs a flush at the end of this turn, unless one is due already. */
  private flushSoon(): void {
    if (this.waiting.size === 0 || this.scheduled) return;
    this.scheduled = true;
    this.defer(() => this.flush());
  }

  /** `answer`, counted in flight for `partition` until it settles; then the writes it held go, at the end of that turn. */
  private sent(partition: number, answer: Promise<KvResponse>): Promise<KvResponse> {
    const at = this.hold.clock?.now() ?? 0;
    const sent = this.inFlightOf.get(partition);
    if (sent === undefined) this.inFlightOf.set(partition, [at]);
    else sent.push(at);
    const done = (): void => {
      const left = this.inFlightOf.get(partition);
      if (left !== undefined) {
        const i = left.indexOf(at);
        if (i >= 0) left.splice(i, 1);
        if (left.length === 0) this.inFlightOf.delete(partition);
      }
      this.flushSoon();
    };
    answer.then(done, done);
    return answer;
  }

  /**
   * The next sequence number of the node's session, open until `close`: its
   * low-water mark is below every number still open, whose entry the node
   * may still send (again).
   */
  private nextSession(): { session: ClientSession; close: () => void } {
    const s = this.session;
    const seq = ++s.seq;
    s.open.add(seq);
    const lowWater = Math.min(...s.open) - 1;
    return { session: { clientId: s.clientId, seq, lowWater }, close: () => s.open.delete(seq) };
  }

  private send(partition: number, run: Waiting[], sessioned: boolean): void {
    if (run.length === 1) {
      const [w] = run as [Waiting];
      this.sent(partition, this.api.execute(w.req)).then(w.resolve, w.reject);
      return;
    }
    const own = sessioned ? this.nextSession() : undefined;
    const exec: KvClientRequest = {
      kind: 'write',
      write: { op: 'exec', writes: run.map((w) => w.req.write), watch: [] },
      ...(own !== undefined ? { session: own.session } : {}),
      // Answered without records when every write of it asks so (HTTP's Prefer: return=minimal).
      ...(run.every((w) => w.req.answer === 'revision') ? { answer: 'revision' as const } : {}),
    };
    const answer = this.sent(partition, this.api.execute(exec));
    if (own !== undefined) answer.then(own.close, own.close);
    answer.then(
      (a) => {
        if (a.type === 'list' && a.items !== null && a.items.length === run.length) {
          run.forEach((w, i) => w.resolve(a.items![i]!));
        } else {
          for (const w of run) w.resolve(a);
        }
      },
      (err) => {
        for (const w of run) w.reject(err);
      },
    );
  }
}
