import type { ConfState, Entry, SnapshotMeta } from '@cohort/core';
import type { AppliedState, ApplyOutcome, DurableStateMachine, SnapshotReader, SnapshotWriter } from '@cohort/raft';
import { type DurableNodeStore, MemoryNodeStore, type PartitionKv } from '@cohort/storage';
import {
  type MetaExtension,
  type MetaResult,
  type MetaState,
  applyMeta,
  decodeMetaCommand,
  emptyMeta,
  upgradeMeta,
} from './state.js';

/** The row of the meta partition that holds the whole state. */
const STATE_KEY = new TextEncoder().encode('meta/state');
const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * The meta group's state machine on the node's store: the state is small
 * (nodes and partitions), kept in memory and written whole as one row of
 * its own store partition in the transaction that records the applied
 * position, so it is persisted and snapshotted as any group is.
 */
export class MetaStateMachine implements DurableStateMachine<MetaResult> {
  private readonly kv: PartitionKv;
  private readonly privateStore: MemoryNodeStore | undefined;
  private readonly store: DurableNodeStore;
  private current: MetaState;
  private readonly listeners = new Set<(state: MetaState) => void>();

  /**
   * @param extensions control-plane users' commands (`extCommand`) by section;
   *   every node of a cluster registers the same ones.
   */
  constructor(
    store?: DurableNodeStore,
    partition = 'meta',
    private readonly extensions: ReadonlyMap<string, MetaExtension> = new Map(),
  ) {
    if (store === undefined) this.privateStore = new MemoryNodeStore();
    this.store = store ?? (this.privateStore as MemoryNodeStore);
    this.kv = this.store.kv(partition);
    this.current = this.load();
  }

  private load(): MetaState {
    const rec = this.kv.get(STATE_KEY);
    return rec === undefined ? emptyMeta() : upgradeMeta(JSON.parse(dec.decode(rec.value)));
  }

  /** The state as applied here (do not change it). */
  get state(): Readonly<MetaState> {
    return this.current;
  }

  /** Calls `fn` after each batch that applied a command, and after a snapshot replaced the state. */
  onChange(fn: (state: MetaState) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  applied(): AppliedState {
    return this.kv.applied();
  }

  applyBatch(entries: Entry[], confState: ConfState): (ApplyOutcome<MetaResult> | undefined)[] {
    const outcomes: (ApplyOutcome<MetaResult> | undefined)[] = [];
    let changed = false;
    this.store.transaction(
      () => {
        let applied = this.kv.applied();
        const before = applied.index;
        for (const e of entries) {
          if (e.index <= applied.index) {
            outcomes.push(undefined);
            continue;
          }
          applied = { index: e.index, term: e.term, confState };
          if (e.type !== 'normal' || e.data.length === 0) {
            outcomes.push(undefined);
            continue;
          }
          try {
            const result = applyMeta(this.current, decodeMetaCommand(e.data), this.extensions);
            changed ||= result.ok;
            outcomes.push({ ok: true, value: result });
          } catch (err) {
            outcomes.push({ ok: false, error: err as Error });
          }
        }
        if (changed) this.kv.put(STATE_KEY, enc.encode(JSON.stringify(this.current)), { revision: applied.index });
        if (applied.index > before) this.kv.setApplied(applied);
      },
      { durable: false },
    );
    this.privateStore?.sync();
    if (changed) this.tell();
    return outcomes;
  }

  private tell(): void {
    for (const fn of this.listeners) fn(this.current);
  }

  openSnapshot(): SnapshotReader {
    const meta = this.kv.applied();
    let chunk: Uint8Array | undefined = enc.encode(JSON.stringify(this.current));
    return {
      meta,
      next: () => {
        const c = chunk;
        chunk = undefined;
        return c;
      },
      close: () => {
        chunk = undefined;
      },
    };
  }

  receiveSnapshot(meta: SnapshotMeta): SnapshotWriter {
    const parts: Uint8Array[] = [];
    return {
      write: (seq, chunk) => {
        if (seq !== parts.length) throw new Error(`meta snapshot chunk ${seq} out of order (expected ${parts.length})`);
        parts.push(chunk.slice());
      },
      commit: () => {
        const text = parts.map((p) => dec.decode(p, { stream: true })).join('') + dec.decode();
        const state = upgradeMeta(JSON.parse(text));
        const installer = this.kv.beginInstall();
        installer.put({
          key: STATE_KEY,
          value: enc.encode(JSON.stringify(state)),
          createRevision: meta.index,
          modifyRevision: meta.index,
          version: 1,
        });
        installer.commit(meta);
        this.current = state;
        this.privateStore?.sync();
        this.tell();
      },
      abort: () => {
        parts.length = 0;
      },
    };
  }
}
