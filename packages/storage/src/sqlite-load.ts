import type { ConfState, Entry, Logger } from '@cohort/core';
import { StorageError } from '@cohort/core/errors';
import type Database from 'better-sqlite3';
import { groupRowCrc, snapshotRowCrc } from './checksums.js';
import { EntrySizes } from './entry-sizes.js';
import { type EntryRow, type GroupState, decodeEntryRow, newGroupState } from './sqlite-group.js';

/** A row of the `groups` table as better-sqlite3 returns it. */
export interface GroupRowDb {
  gid: number;
  name: string;
  term: number;
  vote: string;
  commit_index: number;
  compact_index: number;
  compact_term: number;
  last_index: number;
  snap_id: number;
  crc: number;
}

interface SnapRowDb {
  sid: number;
  gid: number;
  idx: number;
  term: number;
  conf_state: string;
  size: number;
  chunks: number;
  complete: number;
  crc: number;
}

/**
 * Recovery on open: drops what was never synced (incomplete snapshots, rows
 * past a group's `last_index` marker), then checks each group's row CRC,
 * snapshot and log bounds and loads its recent entries. Anything else wrong
 * is corruption and throws a `StorageError` naming file, group and index.
 */
export function loadGroups(db: Database.Database, file: string, log: Logger, cacheEntries: number): GroupState[] {
  const out: GroupState[] = [];
  db.transaction(() => {
    const staged = db.prepare('SELECT sid FROM snapshots WHERE complete = 0').pluck().all() as number[];
    for (const sid of staged) {
      db.prepare('DELETE FROM snapshot_chunks WHERE sid = ?').run(sid);
      db.prepare('DELETE FROM snapshots WHERE sid = ?').run(sid);
    }
    if (staged.length > 0) log.info('dropped unfinished snapshots', { file, count: staged.length });
    db.prepare('DELETE FROM snapshot_chunks WHERE sid NOT IN (SELECT sid FROM snapshots)').run();
    const rows = db.prepare('SELECT * FROM groups ORDER BY gid').all() as GroupRowDb[];
    for (const r of rows) out.push(loadGroup(db, file, log, r, cacheEntries));
  })();
  return out;
}

function loadGroup(db: Database.Database, file: string, log: Logger, r: GroupRowDb, cacheEntries: number): GroupState {
  const s = newGroupState(r.name);
  s.gid = r.gid;
  s.hardState = { term: r.term, vote: r.vote, commit: r.commit_index };
  s.compactIndex = r.compact_index;
  s.compactTerm = r.compact_term;
  s.lastIndex = r.last_index;
  s.snapId = r.snap_id;
  const fail = (what: string): never => {
    throw new StorageError(`${file}: group ${r.name}: ${what}`);
  };
  if (
    groupRowCrc({
      name: r.name,
      hardState: s.hardState,
      compactIndex: s.compactIndex,
      compactTerm: s.compactTerm,
      lastIndex: s.lastIndex,
      snapId: s.snapId,
    }) !== r.crc
  ) {
    fail(`the hard state and log bounds row fails its CRC32C check (last index ${r.last_index})`);
  }
  if (s.snapId !== 0) {
    const snap = db.prepare('SELECT * FROM snapshots WHERE sid = ?').get(s.snapId) as SnapRowDb | undefined;
    if (!snap) return fail(`its snapshot (id ${s.snapId}) is missing`);
    let confState: ConfState;
    try {
      confState = JSON.parse(snap.conf_state) as ConfState;
    } catch {
      return fail(`the snapshot at ${snap.idx} has unreadable membership`);
    }
    const meta = { index: snap.idx, term: snap.term, confState };
    if (snap.gid !== r.gid || snapshotRowCrc(r.gid, meta, snap.conf_state, snap.size, snap.chunks) !== snap.crc) {
      fail(`the snapshot at index ${snap.idx} fails its CRC32C check`);
    }
    const chunks = db.prepare('SELECT count(*) FROM snapshot_chunks WHERE sid = ?').pluck().get(s.snapId) as number;
    if (chunks !== snap.chunks) fail(`the snapshot at index ${snap.idx} has ${chunks} of its ${snap.chunks} chunks`);
    s.snapMeta = meta;
    s.snapSize = snap.size;
    s.snapChunks = snap.chunks;
  }
  // Rows past the synced marker belong to a write that never committed: the unsynced tail.
  const extra = db.prepare('DELETE FROM entries WHERE gid = ? AND idx > ?').run(r.gid, r.last_index).changes;
  if (extra > 0)
    log.warn('truncated an unsynced log tail', { file, group: r.name, after: r.last_index, entries: extra });
  // Rows at or before the compaction point are what a compaction left for later jobs to delete
  // (SqliteLogWriter.compactState) when the node crashed first (a close deletes them).
  const compacted = db.prepare('DELETE FROM entries WHERE gid = ? AND idx <= ?').run(r.gid, r.compact_index).changes;
  if (compacted > 0)
    log.info('deleted compacted log entries left from before the restart', {
      file,
      group: r.name,
      upTo: r.compact_index,
      entries: compacted,
    });
  const bounds = db
    .prepare('SELECT min(idx) AS lo, max(idx) AS hi, count(*) AS n FROM entries WHERE gid = ?')
    .get(r.gid) as { lo: number | null; hi: number | null; n: number };
  const want = s.lastIndex - s.compactIndex;
  if (bounds.n !== want || (want > 0 && (bounds.lo !== s.compactIndex + 1 || bounds.hi !== s.lastIndex))) {
    const missing = findGap(db, r.gid, s.compactIndex + 1, s.lastIndex);
    fail(
      `the log should hold entries ${s.compactIndex + 1}..${s.lastIndex} but holds ${bounds.n} ` +
        `(${bounds.lo ?? '-'}..${bounds.hi ?? '-'}); first bad index ${missing}`,
    );
  }
  const sizes = db.prepare('SELECT length(data) FROM entries WHERE gid = ? ORDER BY idx').pluck();
  s.sizes = EntrySizes.of(s.compactIndex, sizes.iterate(r.gid) as IterableIterator<number>);
  s.bytes = s.sizes.sum(s.compactIndex + 1, s.lastIndex);
  s.bytesSinceSnapshot = s.sizes.sum(Math.max(s.compactIndex, s.snapMeta.index) + 1, s.lastIndex);
  const tailRows = db
    .prepare('SELECT idx, term, type, data, crc FROM entries WHERE gid = ? ORDER BY idx DESC LIMIT ?')
    .all(r.gid, cacheEntries) as EntryRow[];
  const tail: Entry[] = tailRows.reverse().map((row) => decodeEntryRow(file, r.name, row));
  s.tail = tail;
  s.tailBytes = tail.reduce((n, e) => n + e.data.length, 0);
  if (s.hardState.commit > s.lastIndex) {
    fail(`the commit index ${s.hardState.commit} is past the last index ${s.lastIndex}`);
  }
  return s;
}

/** The first index in [lo, hi] that is missing or out of place. */
function findGap(db: Database.Database, gid: number, lo: number, hi: number): number {
  const it = db
    .prepare('SELECT idx FROM entries WHERE gid = ? ORDER BY idx')
    .pluck()
    .iterate(gid) as IterableIterator<number>;
  let expect = lo;
  for (const idx of it) {
    if (idx !== expect || idx > hi) return expect <= hi ? expect : idx;
    expect++;
  }
  return expect;
}
