import type Database from 'better-sqlite3';

/** Prepares the statements of a {@link SqliteNodeStore}'s Raft tables, once per connection. */
export function prepareStatements(db: Database.Database): Statements {
  const p = (sql: string): Database.Statement => db.prepare(sql);
  return {
    insGroup: p(
      "INSERT INTO groups (gid, name, term, vote, commit_index, compact_index, compact_term, last_index, snap_id, crc) VALUES (?, ?, 0, '', 0, 0, 0, 0, 0, ?)",
    ),
    updGroup: p(
      'UPDATE groups SET term = ?, vote = ?, commit_index = ?, compact_index = ?, compact_term = ?, last_index = ?, snap_id = ?, crc = ? WHERE gid = ?',
    ),
    insEntry: p('INSERT INTO entries (gid, idx, term, type, data, crc) VALUES (?, ?, ?, ?, ?, ?)'),
    delFrom: p('DELETE FROM entries WHERE gid = ? AND idx >= ?'),
    delUpTo: p('DELETE FROM entries WHERE gid = ? AND idx <= ?'),
    delRange: p('DELETE FROM entries WHERE gid = ? AND idx > ? AND idx <= ?'),
    range: p('SELECT idx, term, type, data, crc FROM entries WHERE gid = ? AND idx >= ? AND idx < ? ORDER BY idx'),
    at: p('SELECT idx, term, type, data, crc FROM entries WHERE gid = ? AND idx = ?'),
    insSnap: p(
      'INSERT INTO snapshots (sid, gid, idx, term, conf_state, size, chunks, complete, crc) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0)',
    ),
    completeSnap: p('UPDATE snapshots SET size = ?, chunks = ?, complete = 1, crc = ? WHERE sid = ?'),
    insChunk: p('INSERT INTO snapshot_chunks (sid, seq, data, crc) VALUES (?, ?, ?, ?)'),
    chunk: p('SELECT data, crc FROM snapshot_chunks WHERE sid = ? AND seq = ?'),
    delOldChunks: p('DELETE FROM snapshot_chunks WHERE sid IN (SELECT sid FROM snapshots WHERE gid = ? AND sid <> ?)'),
    delOldSnaps: p('DELETE FROM snapshots WHERE gid = ? AND sid <> ?'),
    delSnap: p('DELETE FROM snapshots WHERE sid = ?'),
    delSnapChunks: p('DELETE FROM snapshot_chunks WHERE sid = ?'),
    // Vertical Paxos acceptor state (migration 7): a promise is never lowered.
    vpPromise: p(
      'INSERT INTO vp_acceptors (name, max_ballot, crc) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET max_ballot = excluded.max_ballot, crc = excluded.crc WHERE excluded.max_ballot > vp_acceptors.max_ballot',
    ),
    vpVote: p(
      'INSERT INTO vp_votes (name, slot, ballot, chosen, value, crc) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, slot) DO UPDATE SET ballot = excluded.ballot, chosen = excluded.chosen, value = excluded.value, crc = excluded.crc',
    ),
    // Migration 8: the compaction point is never lowered; the votes up to it go in the same commit.
    vpCompact: p(
      'INSERT INTO vp_compaction (name, slot, crc) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET slot = excluded.slot, crc = excluded.crc WHERE excluded.slot > vp_compaction.slot',
    ),
    vpDropVotes: p('DELETE FROM vp_votes WHERE name = ? AND slot <= ?'),
    vpCompaction: p('SELECT slot, crc FROM vp_compaction WHERE name = ?'),
    vpAcceptor: p('SELECT max_ballot, crc FROM vp_acceptors WHERE name = ?'),
    vpVotes: p('SELECT slot, ballot, chosen, value, crc FROM vp_votes WHERE name = ? ORDER BY slot'),
  };
}

/** The prepared statements of a {@link SqliteNodeStore}. */
export interface Statements {
  insGroup: Database.Statement;
  updGroup: Database.Statement;
  insEntry: Database.Statement;
  delFrom: Database.Statement;
  delUpTo: Database.Statement;
  delRange: Database.Statement;
  range: Database.Statement;
  at: Database.Statement;
  insSnap: Database.Statement;
  completeSnap: Database.Statement;
  insChunk: Database.Statement;
  chunk: Database.Statement;
  delOldChunks: Database.Statement;
  delOldSnaps: Database.Statement;
  delSnap: Database.Statement;
  delSnapChunks: Database.Statement;
  vpPromise: Database.Statement;
  vpVote: Database.Statement;
  vpCompact: Database.Statement;
  vpDropVotes: Database.Statement;
  vpCompaction: Database.Statement;
  vpAcceptor: Database.Statement;
  vpVotes: Database.Statement;
}
