import type { Entry, LogIndex } from '@cohort/core';
import { type CarvedHolder, type KvRecord, holdsCarved, slabState, unpinnedRecord } from '@cohort/storage';
import { type KvOp, entryCommand } from './command.js';
import { opKeys } from './txn/op-keys.js';

/** One change of one key, as a watcher sees it; `revision` is the log index of the write. */
export interface KvEvent {
  type: 'put' | 'delete';
  key: Uint8Array;
  revision: LogIndex;
  /** A put: the key's record after it. A delete: absent. */
  record?: KvRecord;
  /** A put decoded from a log entry ({@link eventsFromEntries}), without a record: the value written. */
  value?: Uint8Array;
}

/** What the state machine tells its listener as it applies. */
export interface KvEventListener {
  /** The changes of the entries up to `applied`, in log order (called after their batch's transaction). */
  applied(events: KvEvent[], applied: LogIndex): void;
  /** The partition was replaced by a snapshot at `index`: the changes before it are unknown. */
  reset(index: LogIndex): void;
}

/** Which keys a watch follows: one key, or every key starting with a prefix. */
export type WatchFilter = { key: Uint8Array } | { prefix: Uint8Array };

/** A live watch: `cancel` stops it. */
export interface WatchHandle {
  cancel(): void;
}

/** Options of {@link WatchHub}. */
export interface WatchHubOptions {
  /** The index applied when the hub starts: the history holds the changes after it. */
  applied: LogIndex;
  /** Events kept for watches that start in the past. @default 10000 */
  capacity?: number;
  /** Bytes of keys and values those events may hold; the oldest go first past it. @default 64 MiB */
  capacityBytes?: number;
}

/** Bytes an event is counted for: its key and value, and a fixed overhead. */
function eventBytes(e: KvEvent): number {
  return e.key.length + (e.record?.value.length ?? e.value?.length ?? 0) + 64;
}

/** Why a watch cannot start where it asked: the history no longer holds that revision. */
export interface Compacted {
  compacted: true;
  /** The oldest revision a watch may start from. */
  oldest: LogIndex;
}

interface Watcher {
  /** The first revision the watch asked for: nothing before it is sent, even live. */
  from: LogIndex;
  matches(key: Uint8Array): boolean;
  send(events: KvEvent[]): void;
  reset(oldest: LogIndex): void;
}

function startsWith(key: Uint8Array, prefix: Uint8Array): boolean {
  if (key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && startsWith(a, b);
}

/** Whether `key` is one a watch with `filter` follows. */
export function watchMatches(filter: WatchFilter, key: Uint8Array): boolean {
  return 'key' in filter ? sameBytes(key, filter.key) : startsWith(key, filter.prefix);
}

/**
 * The changes one replica applied, for watches: a bounded history of recent
 * events, so a watch may start at a past revision (a client resuming from
 * the last one it saw), and live delivery as entries apply. Every change
 * after `oldest - 1` is held; older ones were dropped (capacity) or never
 * seen (before the process started, or replaced by a snapshot).
 */
export class WatchHub implements KvEventListener, CarvedHolder {
  private readonly capacity: number;
  private readonly capacityBytes: number;
  private bytes = 0;
  /** Events from `head` on; the slots before it are empty. */
  private history: (KvEvent | undefined)[] = [];
  private head = 0;
  /**
   * Events before this index hold no bytes carved from a stale slab (see `slabState` in @cohort/storage):
   * told every `SLABS_PER_CHECK` slabs (`holdsCarved`), the history swaps an event's record for a copy of its
   * own once the slab it was carved from goes stale, so it keeps at most about `SLABS_KEPT` slabs alive, however
   * long it keeps events (a quiet partition's history beside busy ones would otherwise keep one slab alive for
   * every event it holds).
   */
  private settled = 0;
  private first: LogIndex;
  private last: LogIndex;
  private readonly watchers = new Set<Watcher>();

  constructor(opts: WatchHubOptions) {
    this.capacity = opts.capacity ?? 10_000;
    this.capacityBytes = opts.capacityBytes ?? 64 * 1024 * 1024;
    this.first = opts.applied + 1;
    this.last = opts.applied;
    holdsCarved(this);
  }

  /** The oldest revision a watch may start from. */
  get oldest(): LogIndex {
    return this.first;
  }

  /** The last applied index this hub heard of. */
  get appliedIndex(): LogIndex {
    return this.last;
  }

  applied(events: KvEvent[], applied: LogIndex): void {
    this.last = Math.max(this.last, applied);
    if (events.length === 0) return;
    for (const e of events) {
      this.history.push(e);
      this.bytes += eventBytes(e);
    }
    const held = this.history.length - this.head;
    if (held > this.capacity || this.bytes > this.capacityBytes) {
      let cut = this.head + Math.max(0, held - this.capacity);
      for (let i = this.head; i < cut; i++) this.bytes -= eventBytes(this.history[i] as KvEvent);
      while (this.bytes > this.capacityBytes && cut < this.history.length) {
        this.bytes -= eventBytes(this.history[cut] as KvEvent);
        cut++;
      }
      // Keep whole revisions: a revision is complete in the history or absent from it.
      const lastDropped = (this.history[cut - 1] as KvEvent).revision;
      while (cut < this.history.length && (this.history[cut] as KvEvent).revision === lastDropped) {
        this.bytes -= eventBytes(this.history[cut] as KvEvent);
        cut++;
      }
      this.first = lastDropped + 1;
      // The dropped events' slots let go of them now: the array is cut only once they are half of it, and
      // until then they would hold up to `capacity` more events (their records, keys and values) alive.
      this.history.fill(undefined, this.head, cut);
      this.head = cut;
      if (this.head > 4096 && this.head * 2 > this.history.length) {
        this.history = this.history.slice(this.head);
        this.settled = Math.max(0, this.settled - this.head);
        this.head = 0;
      }
    }
    for (const w of this.watchers) {
      // A watch may start past what this replica applied (a client resuming after this node restarted
      // and before it re-applied what it had applied before): what applies below its start is not its.
      const mine = events.filter((e) => e.revision >= w.from && w.matches(e.key));
      if (mine.length === 0) continue;
      try {
        w.send(mine);
      } catch {
        // A watcher that cannot take its events is dropped; the entries applied regardless.
        this.watchers.delete(w);
      }
    }
  }

  /** Gives the events whose slab went stale records of their own ({@link settled}); events are in the order carved. */
  unpinStale(): void {
    const h = this.history;
    let i = Math.max(this.settled, this.head);
    for (; i < h.length; i++) {
      const e = h[i] as KvEvent;
      const rec = e.record;
      const state = slabState(rec?.key ?? e.key);
      if (state === 'fresh') break;
      if (state !== 'stale') continue;
      if (rec === undefined) h[i] = { ...e, key: e.key.slice() };
      else {
        const own = unpinnedRecord(rec);
        h[i] = { ...e, key: own.key, record: own };
      }
    }
    this.settled = i;
  }

  reset(index: LogIndex): void {
    this.history = [];
    this.head = 0;
    this.settled = 0;
    this.bytes = 0;
    this.first = index + 1;
    this.last = Math.max(this.last, index);
    for (const w of [...this.watchers]) {
      this.watchers.delete(w);
      try {
        w.reset(this.first);
      } catch {
        // Dropped either way.
      }
    }
  }

  /**
   * Starts a watch of `filter` from revision `from`: `send` gets the held
   * events at or after it at once (when any), then each new batch as it
   * applies; `reset` is called if a snapshot replaces the partition (the
   * watch is over then). Answers {@link Compacted} when the history no
   * longer reaches back to `from`.
   */
  watch(
    filter: WatchFilter,
    from: LogIndex,
    send: (events: KvEvent[]) => void,
    reset: (oldest: LogIndex) => void,
  ): WatchHandle | Compacted {
    if (from < this.first) return { compacted: true, oldest: this.first };
    const w: Watcher = { from, matches: (k) => watchMatches(filter, k), send, reset };
    const past: KvEvent[] = [];
    for (let i = this.head; i < this.history.length; i++) {
      const e = this.history[i] as KvEvent;
      if (e.revision >= from && w.matches(e.key)) past.push(e);
    }
    if (past.length > 0) send(past);
    this.watchers.add(w);
    return { cancel: () => this.watchers.delete(w) };
  }

  /** Watches running now. */
  get watching(): number {
    return this.watchers.size;
  }
}

/**
 * The changes of keys matching `filter` made by log entries (in index
 * order), decoded from the entries alone: a SET or a `cond` put without
 * condition and MSET become put events (with their values and mod revisions; create revision
 * and version are not known from an entry), and so do those in an EXEC that
 * watches no key (concurrent HTTP puts merged into one entry). Undefined when an entry touches
 * a matching key in a way whose outcome depends on the state it applied to
 * (a conditional write, a delete, an increment, an expiry, FLUSHDB, an
 * EXEC watching keys, a write in a client session, which may be a retry): the events cannot be told then.
 */
export function eventsFromEntries(entries: Entry[], filter: WatchFilter): KvEvent[] | undefined {
  const out: KvEvent[] = [];
  for (const e of entries) {
    const cmd = entryCommand(e);
    if (cmd === undefined) continue;
    if (cmd.op === 'exec' && cmd.session === undefined && cmd.watch.length === 0) {
      for (const op of cmd.ops) if (!putEvents(op, e.index, filter, out)) return undefined;
      continue;
    }
    if (cmd.session !== undefined && commandKeys(cmd)?.some((k) => watchMatches(filter, k)) !== false) {
      return undefined;
    }
    if (!putEvents(cmd, e.index, filter, out)) return undefined;
  }
  return out;
}

/**
 * Adds to `out` the put events of `cmd` at `revision` for keys matching
 * `filter`; false when it touches a matching key in a way an entry alone
 * does not tell.
 */
function putEvents(cmd: KvOp, revision: LogIndex, filter: WatchFilter, out: KvEvent[]): boolean {
  const keys = commandKeys(cmd);
  if (keys === undefined) return false;
  if (!keys.some((k) => watchMatches(filter, k))) return true;
  if (
    cmd.op === 'set' &&
    cmd.condition === 'always' &&
    !cmd.keepTtl &&
    (cmd.expiresAt === 0 || cmd.expiresAt > cmd.now)
  ) {
    out.push({ type: 'put', key: cmd.key, revision, value: cmd.value });
    return true;
  }
  if (
    cmd.op === 'cond' &&
    cmd.compare.kind === 'always' &&
    cmd.action.kind === 'put' &&
    (cmd.action.expiresAt === 0 || cmd.action.expiresAt > cmd.now)
  ) {
    out.push({ type: 'put', key: cmd.key, revision, value: cmd.action.value });
    return true;
  }
  if (cmd.op === 'mset') {
    cmd.keys.forEach((key, i) => {
      if (watchMatches(filter, key)) out.push({ type: 'put', key, revision, value: cmd.values[i] as Uint8Array });
    });
    return true;
  }
  return false;
}

/** The keys a command may write; undefined when it may write any key (FLUSHDB, or one inside an EXEC). */
function commandKeys(cmd: KvOp): Uint8Array[] | undefined {
  switch (cmd.op) {
    case 'checksum':
    case 'read':
      return [];
    case 'exec': {
      // Its watched keys are compared, not written.
      const keys: Uint8Array[] = [];
      for (const op of cmd.ops) {
        const k = commandKeys(op);
        if (k === undefined) return undefined;
        keys.push(...k);
      }
      return keys;
    }
    case 'flush':
    // A transaction step writes what its intents hold, which the entry alone does not tell.
    case 'txnPrepare':
    case 'txnCommit':
    case 'txnAbort':
    case 'txnResolve':
    case 'txnForget':
      return undefined;
    default: {
      const k = opKeys(cmd);
      return k === 'all' ? undefined : k;
    }
  }
}
