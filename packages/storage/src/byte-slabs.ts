import { recordOf } from './record-copy.js';
import { OverRecord } from './sqlite-kv-over.js';
import { type KvRecord, ownedKeyValue } from './types.js';

/**
 * Copies of written keys and values, carved out of shared slabs.
 *
 * A put keeps its own copy of its key and value (the caller's bytes are views into a log entry or a request).
 * One `ArrayBuffer` a copy cost every replica a backing store, its bookkeeping and its sweep by V8's collector on
 * every write: under pipelined `SET`s, slabs instead of them gave ~4% more `SET`s for ~5% less server CPU a `SET`.
 * A carved copy keeps its whole slab alive, though, so whatever holds copies past a few writes (the row cache, a
 * watch history) registers ({@link holdsCarved}) and swaps them for copies of their own once their slab is
 * {@link SLABS_KEPT} slabs old ({@link slabState}, {@link unpinnedRecord}), when told to every
 * {@link SLABS_PER_CHECK} slabs: the slabs long-lived holders keep alive are bounded by that, whatever and however
 * long they hold (a quiet partition's watch history as much as a busy one's), and a row rewritten sooner (a hot
 * key's) is never copied twice.
 *
 * Slabs are per thread (a module's state); the event loop carves every write's copies.
 */

/** Bytes of one slab. */
export const SLAB_BYTES = 16 * 1024;

/** A key and value longer than this together get a buffer of their own: a slab holds at least eight. */
const CARVED_MAX_BYTES = SLAB_BYTES / 8;

/**
 * How many slabs may be started after the one a copy was carved from before a long-lived holder copies it out:
 * at most this many slabs (4 MiB) are kept alive by the holders that follow the rule.
 */
export const SLABS_KEPT = 256;

/** Holders are told to copy out what went stale each time this many slabs were started. */
export const SLABS_PER_CHECK = SLABS_KEPT / 8;

/** What holds carved copies past a few writes: {@link holdsCarved}. */
export interface CarvedHolder {
  /** Replaces what it holds carved from a stale slab ({@link slabState}) with copies of its own. */
  unpinStale(): void;
}

/** Holders, weakly: a holder dropped without a word is forgotten once collected. */
const holders = new Set<WeakRef<CarvedHolder>>();
let checkQueued = false;

/**
 * Registers `holder`: its {@link CarvedHolder.unpinStale} is called every {@link SLABS_PER_CHECK} slabs, in a
 * microtask (never inside a write), for as long as it lives.
 */
export function holdsCarved(holder: CarvedHolder): void {
  holders.add(new WeakRef(holder));
}

function checkHolders(): void {
  checkQueued = false;
  for (const ref of holders) {
    const h = ref.deref();
    if (h === undefined) {
      holders.delete(ref);
      continue;
    }
    try {
      h.unpinStale();
    } catch (err) {
      // Runs in a microtask: a throw would take the process down. The holder keeps what it holds (its slabs
      // stay alive with it) and is told no more.
      holders.delete(ref);
      process.emitWarning(
        `a holder of carved copies (${h.constructor.name}) failed to copy out what it holds from stale slabs, and is no longer told to: ${(err as Error).message}`,
        { code: 'COHORT_SLAB_HOLDER' },
      );
    }
  }
}

let slab: ArrayBuffer | undefined;
let used = SLAB_BYTES;
/** Slabs started so far; the current one's number. */
let started = 0;
/** Each slab's number, to tell how old a copy is (a weak map: a slab no copy needs is collected). */
const numbers = new WeakMap<ArrayBufferLike, number>();

/** Own copies of `key` and `value`, side by side in one buffer: a slab's, or their own when large. */
export function carvedKeyValue(key: Uint8Array, value: Uint8Array): [Uint8Array, Uint8Array] {
  const n = key.byteLength + value.byteLength;
  if (n > CARVED_MAX_BYTES) return ownedKeyValue(key, value);
  if (used + n > SLAB_BYTES || slab === undefined) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
    numbers.set(slab, ++started);
    if (started % SLABS_PER_CHECK === 0 && !checkQueued) {
      checkQueued = true;
      queueMicrotask(checkHolders);
    }
  }
  const k = new Uint8Array(slab, used, key.byteLength);
  k.set(key);
  const v = new Uint8Array(slab, used + key.byteLength, value.byteLength);
  v.set(value);
  // Eight-byte steps: whoever reads a copy through a wider view of its buffer finds it aligned.
  used += (n + 7) & ~7;
  return [k, v];
}

/**
 * What holding `bytes` keeps alive, for a long-lived holder: `own`, not carved from a slab (a buffer of its own, or
 * anyone's bytes), nothing to do; `fresh`, carved from one of the last {@link SLABS_KEPT} slabs, fine to hold for
 * now; `stale`, carved from an older slab, to be copied out ({@link unpinnedRecord}) by whoever holds it on.
 */
export type SlabState = 'own' | 'fresh' | 'stale';

/** The number of the slab `bytes` were carved from; 0 when they were not ({@link slabState} `own`). */
export function slabOf(bytes: Uint8Array): number {
  return numbers.get(bytes.buffer) ?? 0;
}

/** Whether slab number `n` (of {@link slabOf}, not 0) is {@link SLABS_KEPT} slabs old or more. */
export function slabStale(n: number): boolean {
  return n + SLABS_KEPT <= started;
}

/** Whether `bytes` were carved from a slab, and from how recent a one. */
export function slabState(bytes: Uint8Array): SlabState {
  const n = slabOf(bytes);
  if (n === 0) return 'own';
  return slabStale(n) ? 'stale' : 'fresh';
}

/**
 * `rec` with its key and value in a buffer of their own when either was carved from a slab (else `rec`
 * itself): a new record, so whoever else holds `rec` is unaffected. A pending put's record stays one (its
 * create revision and version are still read through the put, and worked out only when read).
 */
export function unpinnedRecord(rec: KvRecord): KvRecord {
  if (slabState(rec.key) === 'own' && slabState(rec.value) === 'own') return rec;
  const [k, v] = ownedKeyValue(rec.key, rec.value);
  return rec instanceof OverRecord ? rec.withBytes(k, v) : recordOf(rec, k, v);
}
