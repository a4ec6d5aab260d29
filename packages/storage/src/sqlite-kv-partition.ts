import type { ConfState } from '@cohort/core';
import { CorruptStateError } from '@cohort/core/errors';
import { emptyConfState } from '@cohort/core/raft-types';
import type Database from 'better-sqlite3';
import { partitionCrc } from './kv-checksums.js';
import { GENERATION_CURRENT } from './schema.js';
import type { RowSource } from './sqlite-kv-rows.js';
import { type KvStatements, prepareKvStatements } from './sqlite-kv-statements.js';
import type { AppliedState } from './types.js';

/** Rows an installer writes per transaction, and rows deleted per purge transaction. */
export const BATCH_ROWS = 1000;

/** Runs `fn` in a transaction of the store, durable or not. */
export type RunTransaction = (fn: () => void, durable: boolean) => void;

interface PartitionRow {
  generation: number;
  applied_index: number;
  applied_term: number;
  conf_state: string;
  log_time: number;
  crc: number;
}

const statements = new WeakMap<Database.Database, KvStatements>();

/** The KV statements of a connection, prepared once. */
export function kvStatements(db: Database.Database): KvStatements {
  let st = statements.get(db);
  if (!st) {
    st = prepareKvStatements(db);
    statements.set(db, st);
  }
  return st;
}

/** Reads and verifies a partition's row; undefined when the partition was never written. */
export function readPartition(
  st: KvStatements,
  src: RowSource,
): { generation: number; applied: AppliedState; logTime: number } | undefined {
  const r = st.partition.get(src.partition) as PartitionRow | undefined;
  if (!r) return undefined;
  let confState: ConfState;
  try {
    confState = JSON.parse(r.conf_state) as ConfState;
  } catch {
    confState = emptyConfState();
  }
  const applied = { index: r.applied_index, term: r.applied_term, confState };
  if (partitionCrc(src.partition, r.generation, applied, r.log_time) !== r.crc) {
    throw new CorruptStateError(
      `${src.file}: partition ${src.partition}: applied state row is corrupt (checksum mismatch); restore the partition from a healthy replica's snapshot`,
      src.partition,
    );
  }
  return { generation: r.generation, applied, logTime: r.log_time };
}

/** Deletes every row of a generation in bounded transactions, then the generation itself. */
export function purgeGeneration(st: KvStatements, genId: number, run: RunTransaction): void {
  for (const stmt of [st.purgeKv, st.purgeSessions, st.purgeResponses]) {
    let changes = BATCH_ROWS;
    while (changes >= BATCH_ROWS) {
      run(() => {
        changes = stmt.run({ gen: genId, limit: BATCH_ROWS }).changes;
      }, false);
    }
  }
  run(() => st.delGeneration.run(genId), false);
}

/** Purges generations left staging by an interrupted install or retired by one that finished. */
export function purgeAbandonedGenerations(db: Database.Database, run: RunTransaction): void {
  const st = kvStatements(db);
  for (const genId of st.generationsWithStatus.all(GENERATION_CURRENT) as number[]) purgeGeneration(st, genId, run);
}
