import { StorageError } from '@cohort/core/errors';
import type Database from 'better-sqlite3';

/**
 * Forward migrations, applied in order; the database's `user_version` is the
 * number of migrations applied. Never edit a released migration: add one.
 */
export const MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  // 1: Raft state. `groups` holds each group's hard state and log bounds with a
  // CRC over the row; `last_index` is the synced marker of the log.
  (db) => {
    db.exec(`
      CREATE TABLE groups (
        gid INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        term INTEGER NOT NULL,
        vote TEXT NOT NULL,
        commit_index INTEGER NOT NULL,
        compact_index INTEGER NOT NULL,
        compact_term INTEGER NOT NULL,
        last_index INTEGER NOT NULL,
        snap_id INTEGER NOT NULL,
        crc INTEGER NOT NULL
      );
      CREATE TABLE entries (
        gid INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        term INTEGER NOT NULL,
        type INTEGER NOT NULL,
        data BLOB NOT NULL,
        crc INTEGER NOT NULL,
        PRIMARY KEY (gid, idx)
      ) WITHOUT ROWID;
      CREATE TABLE snapshots (
        sid INTEGER PRIMARY KEY,
        gid INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        term INTEGER NOT NULL,
        conf_state TEXT NOT NULL,
        size INTEGER NOT NULL,
        chunks INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        crc INTEGER NOT NULL
      );
      CREATE TABLE snapshot_chunks (
        sid INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        crc INTEGER NOT NULL,
        PRIMARY KEY (sid, seq)
      );
    `);
  },
  // 2: KV data per partition, and client sessions for exactly-once writes.
  (db) => {
    db.exec(`
      CREATE TABLE kv (
        pid TEXT NOT NULL,
        key BLOB NOT NULL,
        value BLOB NOT NULL,
        create_rev INTEGER NOT NULL,
        mod_rev INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (pid, key)
      ) WITHOUT ROWID;
      CREATE TABLE sessions (
        pid TEXT NOT NULL,
        client_id TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        response BLOB NOT NULL,
        PRIMARY KEY (pid, client_id)
      ) WITHOUT ROWID;
    `);
  },
  // 3: find expired keys without a full scan.
  (db) => {
    db.exec('CREATE INDEX kv_expiry ON kv (pid, expires_at) WHERE expires_at IS NOT NULL');
  },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The database's schema version (`PRAGMA user_version`). */
export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Brings the schema up to `target` (default: the latest), one transaction per
 * migration so a crash mid-way resumes cleanly. A database newer than this
 * code is refused.
 */
export function migrate(db: Database.Database, file: string, target: number = SCHEMA_VERSION): void {
  const from = schemaVersion(db);
  if (from > SCHEMA_VERSION) {
    throw new StorageError(
      `${file}: schema version ${from} is newer than this build supports (${SCHEMA_VERSION}); run a newer Cohort`,
    );
  }
  for (let v = from; v < target; v++) {
    const step = MIGRATIONS[v] as (db: Database.Database) => void;
    db.transaction(() => {
      step(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
