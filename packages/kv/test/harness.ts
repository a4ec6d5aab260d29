import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Entry, emptyConfState } from '@cohort/core';
import { type DurableNodeStore, MemoryNodeStore, SqliteNodeStore } from '@cohort/storage';
import { type KvCommand, KvStateMachine, type KvStateMachineOptions, encodeCommand } from '../src/index.js';

/** A state machine over one store implementation, restartable as a node would be. */
export interface MachineHarness {
  store: DurableNodeStore;
  sm: KvStateMachine;
  /** Restarts the node: the machine is rebuilt from what the store kept durably. */
  restart(): void;
  /** A second, empty machine on its own store (another replica). */
  peer(): KvStateMachine;
  cleanup(): void;
}

export type MakeHarness = (opts?: KvStateMachineOptions) => MachineHarness;

export const memoryMachine: MakeHarness = (opts = {}) => {
  const h: MachineHarness = {
    store: new MemoryNodeStore(),
    sm: undefined as unknown as KvStateMachine,
    restart() {
      const mem = h.store as MemoryNodeStore;
      // The host's next durable log write syncs the apply transactions before it (WAL order).
      mem.sync();
      mem.crash();
      h.sm = new KvStateMachine(mem, 'p1', opts);
    },
    peer: () => new KvStateMachine(new MemoryNodeStore(), 'p1', opts),
    cleanup: () => {},
  };
  h.sm = new KvStateMachine(h.store, 'p1', opts);
  return h;
};

export const sqliteMachine: MakeHarness = (opts = {}) => sqliteMachineWith('inline', opts);

/** The SQLite store writing on its writer thread, as the node runs it. */
export const sqliteThreadMachine: MakeHarness = (opts = {}) => sqliteMachineWith('thread', opts);

function sqliteMachineWith(writer: 'inline' | 'thread', opts: KvStateMachineOptions): MachineHarness {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-kv-'));
  const stores: DurableNodeStore[] = [];
  const open = (name: string): DurableNodeStore => {
    const s = SqliteNodeStore.open(join(dir, name), { quickCheck: false, writer });
    stores.push(s);
    return s;
  };
  let peers = 0;
  const h: MachineHarness = {
    store: open('node.db'),
    sm: undefined as unknown as KvStateMachine,
    restart() {
      h.store.close();
      h.store = open('node.db');
      h.sm = new KvStateMachine(h.store, 'p1', opts);
    },
    peer: () => new KvStateMachine(open(`peer-${peers++}.db`), 'p1', opts),
    cleanup: () => {
      for (const s of stores) s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  h.sm = new KvStateMachine(h.store, 'p1', opts);
  return h;
}

const enc = new TextEncoder();
/** UTF-8 bytes. */
export const b = (s: string): Uint8Array => enc.encode(s);
/** UTF-8 text of bytes, or undefined. */
export const text = (v: Uint8Array | undefined): string | undefined =>
  v === undefined ? undefined : Buffer.from(v).toString();

/** A normal entry carrying `cmd`. */
export function entry(index: number, cmd: KvCommand, term = 1): Entry {
  return { index, term, type: 'normal', data: encodeCommand(cmd) };
}

/** A SET command at log time `now`. */
export function setCmd(
  key: string,
  value: string,
  now = 1000,
  extra: Partial<Extract<KvCommand, { op: 'set' }>> = {},
): KvCommand {
  return {
    op: 'set',
    key: b(key),
    value: b(value),
    condition: 'always',
    expiresAt: 0,
    returnOld: false,
    now,
    ...extra,
  };
}

/** The configuration most tests apply under. */
export const CONF = { ...emptyConfState(), voters: ['n1', 'n2', 'n3'] };
