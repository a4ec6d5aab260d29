import { StorageError } from '@cohort/core/errors';
import { emptyConfState } from '@cohort/core/raft-types';
import type Database from 'better-sqlite3';
import { kvRowCrc, partitionCrc, responseCrc, sessionCrc } from './kv-checksums.js';

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
  // 4: partitions with generations (a snapshot install switches in O(1)), the
  // applied state stored with the data, a CRC on every row, and sessions that
  // keep a response per sequence number above a low-water mark.
  (db) => migrateToGenerations(db),
  // 5: each key's version (writes since its creation, as etcd's). Rows written
  // before read as version 1, whose checksum is the one they carry already
  // (kvRowCrc), so no row is rewritten.
  (db) => {
    db.exec('ALTER TABLE kv ADD COLUMN version INTEGER NOT NULL DEFAULT 1');
  },
  // 6: each key's Redis type (0 a string, 1 a hash, 2 a list). Rows written
  // before are strings, whose checksum does not cover a type 0 (kvRowCrc).
  (db) => {
    db.exec('ALTER TABLE kv ADD COLUMN type INTEGER NOT NULL DEFAULT 0');
  },
  // 7: Vertical Paxos acceptor state per group: the promise (`max_ballot`,
  // never lowered) and one vote per slot (the value, its ballot, whether it is
  // known chosen), each row with a CRC. New tables only.
  (db) => {
    db.exec(`
      CREATE TABLE vp_acceptors (
        name TEXT PRIMARY KEY,
        max_ballot INTEGER NOT NULL,
        crc INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE vp_votes (
        name TEXT NOT NULL,
        slot INTEGER NOT NULL,
        ballot INTEGER NOT NULL,
        chosen INTEGER NOT NULL,
        value BLOB NOT NULL,
        crc INTEGER NOT NULL,
        PRIMARY KEY (name, slot)
      ) WITHOUT ROWID;
    `);
  },
  // 8: a Vertical Paxos acceptor's compaction point per group: every slot up
  // to it is chosen and applied, and its votes were deleted. New table only.
  (db) => {
    db.exec(`
      CREATE TABLE vp_compaction (
        name TEXT PRIMARY KEY,
        slot INTEGER NOT NULL,
        crc INTEGER NOT NULL
      ) WITHOUT ROWID;
    `);
  },
];

/** Migration 4: moves version 3's `kv` and `sessions` rows into the generation layout, computing their CRCs. */
function migrateToGenerations(db: Database.Database): void {
  db.exec(`
    ALTER TABLE kv RENAME TO kv_v3;
    ALTER TABLE sessions RENAME TO sessions_v3;
    DROP INDEX kv_expiry;
    CREATE TABLE kv_generations (
      gen_id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      status INTEGER NOT NULL
    );
    CREATE TABLE kv_partitions (
      name TEXT PRIMARY KEY,
      generation INTEGER NOT NULL,
      applied_index INTEGER NOT NULL,
      applied_term INTEGER NOT NULL,
      conf_state TEXT NOT NULL,
      log_time INTEGER NOT NULL,
      crc INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE kv (
      gen_id INTEGER NOT NULL,
      key BLOB NOT NULL,
      value BLOB NOT NULL,
      create_rev INTEGER NOT NULL,
      mod_rev INTEGER NOT NULL,
      expires_at INTEGER,
      crc INTEGER NOT NULL,
      PRIMARY KEY (gen_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX kv_expiry ON kv (gen_id, expires_at, key) WHERE expires_at IS NOT NULL;
    CREATE TABLE sessions (
      gen_id INTEGER NOT NULL,
      client_id TEXT NOT NULL,
      low_water INTEGER NOT NULL,
      last_active INTEGER NOT NULL,
      crc INTEGER NOT NULL,
      PRIMARY KEY (gen_id, client_id)
    ) WITHOUT ROWID;
    CREATE INDEX sessions_idle ON sessions (gen_id, last_active, client_id);
    CREATE TABLE session_responses (
      gen_id INTEGER NOT NULL,
      client_id TEXT NOT NULL,
      seq INTEGER NOT NULL,
      response BLOB NOT NULL,
      crc INTEGER NOT NULL,
      PRIMARY KEY (gen_id, client_id, seq)
    ) WITHOUT ROWID;
    INSERT INTO kv_generations (name, status)
      SELECT pid, ${GENERATION_CURRENT} FROM (SELECT pid FROM kv_v3 UNION SELECT pid FROM sessions_v3) ORDER BY pid;
  `);
  const conf = emptyConfState();
  const confJson = JSON.stringify(conf);
  const gens = db.prepare('SELECT gen_id, name FROM kv_generations').all() as { gen_id: number; name: string }[];
  const insPartition = db.prepare('INSERT INTO kv_partitions VALUES (?, ?, 0, 0, ?, 0, ?)');
  for (const g of gens) {
    insPartition.run(
      g.name,
      g.gen_id,
      confJson,
      partitionCrc(g.name, g.gen_id, { index: 0, term: 0, confState: conf }, 0),
    );
  }
  // SQL functions so the rows are copied by SQLite itself, never held in memory.
  db.function('cohort_kv_crc', { deterministic: true }, (name, key, value, c, m, e) =>
    kvRowCrc(
      name as string,
      key as Uint8Array,
      value as Uint8Array,
      Number(c),
      Number(m),
      e === null ? undefined : Number(e),
    ),
  );
  db.function('cohort_session_crc', { deterministic: true }, (name, client, low) =>
    sessionCrc(name as string, { clientId: client as string, lowWater: Number(low), lastActive: 0 }),
  );
  db.function('cohort_response_crc', { deterministic: true }, (name, client, seq, response) =>
    responseCrc(name as string, client as string, Number(seq), response as Uint8Array),
  );
  db.exec(`
    INSERT INTO kv (gen_id, key, value, create_rev, mod_rev, expires_at, crc)
      SELECT g.gen_id, o.key, o.value, o.create_rev, o.mod_rev, o.expires_at,
             cohort_kv_crc(o.pid, o.key, o.value, o.create_rev, o.mod_rev, o.expires_at)
      FROM kv_v3 o JOIN kv_generations g ON g.name = o.pid;
    INSERT INTO sessions (gen_id, client_id, low_water, last_active, crc)
      SELECT g.gen_id, o.client_id, o.last_seq - 1, 0, cohort_session_crc(o.pid, o.client_id, o.last_seq - 1)
      FROM sessions_v3 o JOIN kv_generations g ON g.name = o.pid;
    INSERT INTO session_responses (gen_id, client_id, seq, response, crc)
      SELECT g.gen_id, o.client_id, o.last_seq, o.response,
             cohort_response_crc(o.pid, o.client_id, o.last_seq, o.response)
      FROM sessions_v3 o JOIN kv_generations g ON g.name = o.pid;
    DROP TABLE kv_v3;
    DROP TABLE sessions_v3;
  `);
}

/** `kv_generations.status` of a generation being built by an installer; purged on open. */
export const GENERATION_STAGING = 0;
/** `kv_generations.status` of a partition's current generation. */
export const GENERATION_CURRENT = 1;
/** `kv_generations.status` of a replaced generation whose rows are being deleted. */
export const GENERATION_RETIRED = 2;

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
