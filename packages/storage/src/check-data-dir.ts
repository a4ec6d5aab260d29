import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { checkKvPartitions } from './check-kv.js';
import { chunkCrc, entryCrc, groupRowCrc, snapshotRowCrc } from './checksums.js';
import { SCHEMA_VERSION } from './schema.js';
import type { GroupRowDb } from './sqlite-load.js';
import { type WalReport, scanWal } from './wal-scan.js';

/** The database file's name inside a node's data directory. */
export const DATA_FILE_NAME = 'cohort.db';

/** One problem found by {@link checkDataDir}. */
export interface CheckFinding {
  /** `error`: the node must not start on this data; `warning`: recovery on open handles it. */
  severity: 'error' | 'warning';
  group?: string;
  index?: number;
  message: string;
}

/** What {@link checkDataDir} found for one group. */
export interface GroupCheck {
  group: string;
  firstIndex: number;
  lastIndex: number;
  commit: number;
  term: number;
  snapshotIndex: number;
  entriesChecked: number;
}

/** The result of {@link checkDataDir}. */
export interface CheckReport {
  file: string;
  /** No finding of severity `error`. */
  ok: boolean;
  schemaVersion: number;
  wal: WalReport;
  groups: GroupCheck[];
  /** KV rows whose CRC was verified, per partition (databases at the current schema version). */
  kvRows: Record<string, number>;
  findings: CheckFinding[];
}

/**
 * Checks a node's data without starting it: the WAL, SQLite's
 * `integrity_check`, every group row's and entry's CRC-32C, log contiguity,
 * `commit <= last index`, that every snapshot has all its chunks intact, and
 * the CRC-32C of every KV row, session and stored response.
 * `path` is a data directory (holding `cohort.db`) or the database file itself.
 * Opens the database read-only and never changes it.
 */
export function checkDataDir(path: string): CheckReport {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, DATA_FILE_NAME) : path;
  const findings: CheckFinding[] = [];
  const report: CheckReport = {
    file,
    ok: false,
    schemaVersion: 0,
    wal: scanWal(`${file}-wal`),
    groups: [],
    kvRows: {},
    findings,
  };
  if (!existsSync(file)) {
    findings.push({ severity: 'error', message: `${file} does not exist` });
    return report;
  }
  if (report.wal.corruption) findings.push({ severity: 'error', message: report.wal.corruption });
  else if (report.wal.unsyncedTailBytes > 0) {
    findings.push({
      severity: 'warning',
      message: `${file}-wal: ${report.wal.unsyncedTailBytes} bytes of an unsynced tail will be dropped on open`,
    });
  }
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    const integrity = db.pragma('integrity_check') as { integrity_check: string }[];
    for (const row of integrity) {
      if (row.integrity_check !== 'ok')
        findings.push({ severity: 'error', message: `integrity_check: ${row.integrity_check}` });
    }
    report.schemaVersion = db.pragma('user_version', { simple: true }) as number;
    if (report.schemaVersion > SCHEMA_VERSION) {
      findings.push({
        severity: 'error',
        message: `schema version ${report.schemaVersion} is newer than this build supports (${SCHEMA_VERSION})`,
      });
    } else if (report.schemaVersion >= 1) {
      if (report.schemaVersion < SCHEMA_VERSION) {
        findings.push({
          severity: 'warning',
          message: `schema version ${report.schemaVersion} will be migrated on open`,
        });
      }
      checkGroups(db, report);
      if (report.schemaVersion === SCHEMA_VERSION) {
        report.kvRows = Object.fromEntries(checkKvPartitions(db, file, findings));
      }
    }
  } catch (err) {
    findings.push({ severity: 'error', message: `${file}: ${(err as Error).message}` });
  } finally {
    db?.close();
  }
  report.ok = findings.every((f) => f.severity !== 'error');
  return report;
}

function checkGroups(db: Database.Database, report: CheckReport): void {
  const { findings } = report;
  const staged = db.prepare('SELECT count(*) FROM snapshots WHERE complete = 0').pluck().get() as number;
  if (staged > 0)
    findings.push({ severity: 'warning', message: `${staged} unfinished snapshot(s) will be dropped on open` });
  const rows = db.prepare('SELECT * FROM groups ORDER BY gid').all() as GroupRowDb[];
  const entryStmt = db.prepare('SELECT idx, term, type, data, crc FROM entries WHERE gid = ? ORDER BY idx');
  for (const r of rows) {
    const group = r.name;
    const err = (message: string, index?: number): void => {
      const f: CheckFinding = { severity: 'error', group, message };
      if (index !== undefined) f.index = index;
      findings.push(f);
    };
    const hardState = { term: r.term, vote: r.vote, commit: r.commit_index };
    const rowCrc = groupRowCrc({
      name: r.name,
      hardState,
      compactIndex: r.compact_index,
      compactTerm: r.compact_term,
      lastIndex: r.last_index,
      snapId: r.snap_id,
    });
    if (rowCrc !== r.crc) err('the hard state and log bounds row fails its CRC32C check');
    if (r.commit_index > r.last_index) err(`commit index ${r.commit_index} is past the last index ${r.last_index}`);
    let expect = r.compact_index + 1;
    let checked = 0;
    let compacted = 0;
    for (const e of entryStmt.iterate(r.gid) as IterableIterator<{
      idx: number;
      term: number;
      type: number;
      data: Uint8Array;
      crc: number;
    }>) {
      if (e.idx <= r.compact_index) {
        // A compaction's rows, deleted by later jobs (or on open): not part of the log.
        compacted++;
        continue;
      }
      if (e.idx > r.last_index) {
        findings.push({
          severity: 'warning',
          group,
          index: e.idx,
          message: `entry ${e.idx} is past the synced marker and will be dropped on open`,
        });
        continue;
      }
      if (e.idx !== expect) {
        err(`the log is not contiguous: expected entry ${expect}, found ${e.idx}`, expect);
        expect = e.idx;
      }
      if (entryCrc(group, e.idx, e.term, e.type, e.data) !== e.crc) err(`entry ${e.idx} fails its CRC32C check`, e.idx);
      expect++;
      checked++;
    }
    if (expect <= r.last_index) err(`entries ${expect}..${r.last_index} are missing`, expect);
    if (compacted > 0) {
      findings.push({
        severity: 'warning',
        group,
        message: `${compacted} entries at or before the compaction point ${r.compact_index} are not deleted yet; the node deletes them as it runs, or on open`,
      });
    }
    let snapshotIndex = 0;
    if (r.snap_id !== 0) snapshotIndex = checkSnapshot(db, r, err);
    report.groups.push({
      group,
      firstIndex: r.compact_index + 1,
      lastIndex: r.last_index,
      commit: r.commit_index,
      term: r.term,
      snapshotIndex,
      entriesChecked: checked,
    });
  }
}

function checkSnapshot(db: Database.Database, r: GroupRowDb, err: (message: string, index?: number) => void): number {
  const snap = db.prepare('SELECT * FROM snapshots WHERE sid = ?').get(r.snap_id) as
    | {
        sid: number;
        gid: number;
        idx: number;
        term: number;
        conf_state: string;
        size: number;
        chunks: number;
        crc: number;
      }
    | undefined;
  if (!snap) {
    err(`the current snapshot (id ${r.snap_id}) is missing`);
    return 0;
  }
  let confState: unknown;
  try {
    confState = JSON.parse(snap.conf_state);
  } catch {
    err(`the snapshot at ${snap.idx} has unreadable membership`, snap.idx);
  }
  const meta = { index: snap.idx, term: snap.term, confState: confState as never };
  if (snapshotRowCrc(r.gid, meta, snap.conf_state, snap.size, snap.chunks) !== snap.crc) {
    err(`the snapshot at ${snap.idx} fails its CRC32C check`, snap.idx);
  }
  let size = 0;
  const chunkStmt = db.prepare('SELECT seq, data, crc FROM snapshot_chunks WHERE sid = ? ORDER BY seq');
  let seq = 0;
  for (const c of chunkStmt.iterate(snap.sid) as IterableIterator<{ seq: number; data: Uint8Array; crc: number }>) {
    if (c.seq !== seq) err(`the snapshot at ${snap.idx} is missing chunk ${seq}`, snap.idx);
    if (chunkCrc(snap.sid, c.seq, c.data) !== c.crc)
      err(`the snapshot at ${snap.idx}: chunk ${c.seq} fails its CRC32C check`, snap.idx);
    size += c.data.length;
    seq = c.seq + 1;
  }
  if (seq !== snap.chunks || size !== snap.size) {
    err(
      `the snapshot at ${snap.idx} holds ${seq} chunks / ${size} bytes, expected ${snap.chunks} / ${snap.size}`,
      snap.idx,
    );
  }
  return snap.idx;
}
