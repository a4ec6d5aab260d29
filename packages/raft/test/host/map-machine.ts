import type { ConfState, Entry, LogIndex, SnapshotMeta } from '@cohort/core';
import { CorruptStateError, emptyConfState } from '@cohort/core';
import type { ApplyOutcome, DurableStateMachine, SnapshotReader, SnapshotWriter } from '../../src/index.js';

/** What a {@link MapMachine} has on its disk: survives restarts; only synced state lands here. */
export class MachineDisk {
  map = new Map<string, string>();
  applied: SnapshotMeta = { index: 0, term: 0, confState: emptyConfState() };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A durable state machine over a map of `k=v` commands, for host tests.
 * Honours the contract's durability: applied batches stay in memory until
 * `sync()` (a store write calls it), so a crash loses them; a committed
 * snapshot is durable at once. `applyBatch` returns each entry's index.
 */
export class MapMachine implements DurableStateMachine<LogIndex> {
  readonly map: Map<string, string>;
  private at: SnapshotMeta;
  /** Entries handed to applyBatch, in order (re-deliveries would show here). */
  readonly appliedIndexes: LogIndex[] = [];
  /** Per `applyBatch` call: how many entries and bytes of entry data it was handed. */
  readonly batches: { entries: number; bytes: number }[] = [];
  /** Snapshot views opened (leader side) and writers committed (follower side). */
  viewsOpened = 0;
  /** Calls of `openSnapshot` (a view behind {@link copyGate} opens later). */
  viewsRequested = 0;
  viewsClosed = 0;
  installs = 0;
  /** Set to make the next `applyBatch` find its stored state corrupt (an install replaces the state and clears it). */
  corrupt = false;
  /**
   * While set, a view opens asynchronously once this settles, at the state then (as a store that copies
   * the state aside before a transfer reads it).
   */
  copyGate: Promise<void> | undefined;

  constructor(readonly disk: MachineDisk = new MachineDisk()) {
    this.map = new Map(disk.map);
    this.at = disk.applied;
  }

  /** Makes everything applied so far durable (the store's next durable write does this). */
  sync(): void {
    this.disk.map = new Map(this.map);
    this.disk.applied = this.at;
  }

  applied(): SnapshotMeta {
    return this.at;
  }

  applyBatch(entries: Entry[], confState: ConfState): (ApplyOutcome<LogIndex> | undefined)[] {
    if (this.corrupt) throw new CorruptStateError('map machine: a row fails its checksum', 'map');
    const out: (ApplyOutcome<LogIndex> | undefined)[] = [];
    this.batches.push({ entries: entries.length, bytes: entries.reduce((n, e) => n + e.data.length, 0) });
    for (const e of entries) {
      if (e.index !== this.at.index + 1) throw new Error(`applyBatch: entry ${e.index} after ${this.at.index}`);
      this.appliedIndexes.push(e.index);
      this.at = { index: e.index, term: e.term, confState };
      if (e.type !== 'normal' || e.data.length === 0) {
        out.push(undefined);
        continue;
      }
      const [k, v] = decoder.decode(e.data).split('=');
      if (k === undefined || v === undefined) {
        out.push({ ok: false, error: new Error(`bad command at ${e.index}`) });
        continue;
      }
      this.map.set(k, v);
      out.push({ ok: true, value: e.index });
    }
    return out;
  }

  openSnapshot(): SnapshotReader | Promise<SnapshotReader> {
    this.viewsRequested++;
    const gate = this.copyGate;
    if (gate !== undefined) return gate.then(() => this.view());
    return this.view();
  }

  private view(): SnapshotReader {
    this.viewsOpened++;
    const rows = [...this.map];
    const meta = this.at;
    let pos = 0;
    return {
      meta,
      next: (maxBytes: number): Uint8Array | undefined => {
        if (pos >= rows.length) return undefined;
        const part: [string, string][] = [];
        let bytes = 0;
        while (pos < rows.length && (part.length === 0 || bytes < maxBytes)) {
          const row = rows[pos++] as [string, string];
          bytes += row[0].length + row[1].length + 8;
          part.push(row);
        }
        return encoder.encode(JSON.stringify(part));
      },
      close: () => {
        this.viewsClosed++;
      },
    };
  }

  receiveSnapshot(meta: SnapshotMeta): SnapshotWriter {
    const aside = new Map<string, string>();
    let expect = 0;
    return {
      write: (seq, chunk) => {
        if (seq !== expect) throw new Error(`chunk ${seq} out of order (expected ${expect})`);
        expect++;
        for (const [k, v] of JSON.parse(decoder.decode(chunk)) as [string, string][]) aside.set(k, v);
      },
      commit: () => {
        this.map.clear();
        for (const [k, v] of aside) this.map.set(k, v);
        this.at = meta;
        this.installs++;
        this.corrupt = false;
        // An install is one durable transaction.
        this.sync();
      },
      abort: () => aside.clear(),
    };
  }
}
