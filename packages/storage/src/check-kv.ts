import type Database from 'better-sqlite3';
import { hexKey } from './kv-checksums.js';
import { GENERATION_CURRENT } from './schema.js';
import { readPartition } from './sqlite-kv-partition.js';
import { type KvRow, type ResponseRow, type SessionRow, toRecord, toResponse, toSession } from './sqlite-kv-rows.js';
import { prepareKvStatements } from './sqlite-kv-statements.js';

/** A problem {@link checkKvPartitions} found: `group` names the partition. */
export interface KvFinding {
  severity: 'error' | 'warning';
  group?: string;
  message: string;
}

/** Corrupt rows reported one by one per partition before they are only counted. */
const MAX_LISTED = 10;

/**
 * Verifies every KV partition's applied-state row and the CRC-32C of every
 * row, session and stored response of its current generation, reading row
 * by row; returns the rows checked per partition.
 */
export function checkKvPartitions(db: Database.Database, file: string, findings: KvFinding[]): Map<string, number> {
  const st = prepareKvStatements(db);
  const checked = new Map<string, number>();
  const leftovers = db
    .prepare('SELECT count(*) FROM kv_generations WHERE status <> ?')
    .pluck()
    .get(GENERATION_CURRENT) as number;
  if (leftovers > 0) {
    findings.push({
      severity: 'warning',
      message: `${leftovers} unfinished or replaced KV generation(s) will be purged on open`,
    });
  }
  const names = db.prepare('SELECT name FROM kv_partitions ORDER BY name').pluck().all() as string[];
  const rowsOf = db.prepare('SELECT * FROM kv WHERE gen_id = ?'); // a schema 4 file has no version column
  const sessionsOf = db.prepare('SELECT client_id, low_water, last_active, crc FROM sessions WHERE gen_id = ?');
  const responsesOf = db.prepare('SELECT client_id, seq, response, crc FROM session_responses WHERE gen_id = ?');
  for (const partition of names) {
    const src = { file, partition };
    let bad = 0;
    const fail = (message: string): void => {
      if (bad++ < MAX_LISTED) findings.push({ severity: 'error', group: partition, message });
    };
    let generation: number;
    try {
      const p = readPartition(st, src);
      if (!p) continue;
      generation = p.generation;
    } catch (err) {
      fail((err as Error).message);
      continue;
    }
    let n = 0;
    for (const r of rowsOf.iterate(generation) as IterableIterator<KvRow>) {
      n++;
      try {
        toRecord(src, r);
      } catch {
        fail(`${file}: partition ${partition}: KV row for key ${hexKey(r.key)} fails its CRC32C check`);
      }
    }
    for (const r of sessionsOf.iterate(generation) as IterableIterator<SessionRow>) {
      try {
        toSession(src, r);
      } catch (err) {
        fail((err as Error).message);
      }
    }
    for (const r of responsesOf.iterate(generation) as IterableIterator<ResponseRow & { client_id: string }>) {
      try {
        toResponse(src, r.client_id, r);
      } catch (err) {
        fail((err as Error).message);
      }
    }
    if (bad > MAX_LISTED) {
      findings.push({ severity: 'error', group: partition, message: `${bad} corrupt KV rows in all` });
    }
    checked.set(partition, n);
  }
  return checked;
}
