import type Database from 'better-sqlite3';

const ROW = 'key, value, create_rev, mod_rev, expires_at, crc, version, type';

/** Prepares the statements of the KV tables on one connection. */
export function prepareKvStatements(db: Database.Database): KvStatements {
  const p = (sql: string): Database.Statement => db.prepare(sql);
  return {
    partition: p(
      'SELECT generation, applied_index, applied_term, conf_state, log_time, crc FROM kv_partitions WHERE name = ?',
    ),
    insPartition: p('INSERT INTO kv_partitions VALUES (?, ?, ?, ?, ?, ?, ?)'),
    updPartition: p(
      'UPDATE kv_partitions SET generation = ?, applied_index = ?, applied_term = ?, conf_state = ?, log_time = ?, crc = ? WHERE name = ?',
    ),
    insGeneration: p('INSERT INTO kv_generations (gen_id, name, status) VALUES (?, ?, ?)'),
    setGenerationStatus: p('UPDATE kv_generations SET status = ? WHERE gen_id = ?'),
    delGeneration: p('DELETE FROM kv_generations WHERE gen_id = ?'),
    generationsWithStatus: p('SELECT gen_id FROM kv_generations WHERE status <> ?').pluck(),
    get: p(`SELECT ${ROW} FROM kv WHERE gen_id = ? AND key = ?`),
    createRev: p('SELECT create_rev FROM kv WHERE gen_id = ? AND key = ?').pluck(),
    put: p(`INSERT OR REPLACE INTO kv (gen_id, ${ROW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    del: p('DELETE FROM kv WHERE gen_id = ? AND key = ?'),
    // Two statements, not one with `(@end IS NULL OR key < @end)`: with the OR, SQLite bounds the index
    // walk by the start only, so a scan whose range ends before its limit is reached (a point read of
    // [key, key + 0x00) asking for 2 rows) read every row up to the end of the partition.
    scan: p(`SELECT ${ROW} FROM kv WHERE gen_id = @gen AND key >= @start ORDER BY key LIMIT @limit`),
    scanTo: p(`SELECT ${ROW} FROM kv WHERE gen_id = @gen AND key >= @start AND key < @end ORDER BY key LIMIT @limit`),
    rowsAfter: p(`SELECT ${ROW} FROM kv WHERE gen_id = ? AND key > ? ORDER BY key LIMIT ?`),
    count: p('SELECT count(*) FROM kv WHERE gen_id = ?').pluck(),
    expired: p(
      'SELECT key FROM kv WHERE gen_id = ? AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at, key LIMIT ?',
    ).pluck(),
    expiredAt: p(
      'SELECT key, expires_at FROM kv WHERE gen_id = ? AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at, key LIMIT ?',
    ),
    session: p('SELECT client_id, low_water, last_active, crc FROM sessions WHERE gen_id = ? AND client_id = ?'),
    putSession: p('INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?)'),
    delSession: p('DELETE FROM sessions WHERE gen_id = ? AND client_id = ?'),
    sessionsAfter: p(
      'SELECT client_id, low_water, last_active, crc FROM sessions WHERE gen_id = ? AND client_id > ? ORDER BY client_id LIMIT ?',
    ),
    sessionsFirst: p(
      'SELECT client_id, low_water, last_active, crc FROM sessions WHERE gen_id = ? ORDER BY client_id LIMIT ?',
    ),
    // The least recently active sessions, idle or not: the first one not idle bounds every later sweep.
    leastActive: p(
      'SELECT client_id, last_active FROM sessions WHERE gen_id = ? ORDER BY last_active, client_id LIMIT ?',
    ),
    response: p('SELECT seq, response, crc FROM session_responses WHERE gen_id = ? AND client_id = ? AND seq = ?'),
    maxResponseSeq: p('SELECT max(seq) FROM session_responses WHERE gen_id = ? AND client_id = ?'),
    responses: p('SELECT seq, response, crc FROM session_responses WHERE gen_id = ? AND client_id = ? ORDER BY seq'),
    putResponse: p('INSERT OR REPLACE INTO session_responses VALUES (?, ?, ?, ?, ?)'),
    delResponsesUpTo: p('DELETE FROM session_responses WHERE gen_id = ? AND client_id = ? AND seq <= ?'),
    delResponses: p('DELETE FROM session_responses WHERE gen_id = ? AND client_id = ?'),
    purgeKv: p('DELETE FROM kv WHERE gen_id = @gen AND key IN (SELECT key FROM kv WHERE gen_id = @gen LIMIT @limit)'),
    purgeSessions: p(
      'DELETE FROM sessions WHERE gen_id = @gen AND client_id IN (SELECT client_id FROM sessions WHERE gen_id = @gen LIMIT @limit)',
    ),
    purgeResponses: p(
      'DELETE FROM session_responses WHERE gen_id = @gen AND (client_id, seq) IN (SELECT client_id, seq FROM session_responses WHERE gen_id = @gen LIMIT @limit)',
    ),
  };
}

/** The prepared statements of the KV tables. */
export type KvStatements = Record<
  | 'partition'
  | 'insPartition'
  | 'updPartition'
  | 'insGeneration'
  | 'setGenerationStatus'
  | 'delGeneration'
  | 'generationsWithStatus'
  | 'get'
  | 'createRev'
  | 'put'
  | 'del'
  | 'scan'
  | 'scanTo'
  | 'rowsAfter'
  | 'count'
  | 'expired'
  | 'expiredAt'
  | 'session'
  | 'putSession'
  | 'delSession'
  | 'sessionsAfter'
  | 'sessionsFirst'
  | 'leastActive'
  | 'response'
  | 'maxResponseSeq'
  | 'responses'
  | 'putResponse'
  | 'delResponsesUpTo'
  | 'delResponses'
  | 'purgeKv'
  | 'purgeSessions'
  | 'purgeResponses',
  Database.Statement
>;
