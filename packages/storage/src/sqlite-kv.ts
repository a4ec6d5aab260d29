import type Database from 'better-sqlite3';
import type { ClientSession, KvPutOptions, KvRecord, KvScanOptions, PartitionKv } from './types.js';

interface KvRow {
  key: Uint8Array;
  value: Uint8Array;
  create_rev: number;
  mod_rev: number;
  expires_at: number | null;
}

const view = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const blob = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

function toRecord(r: KvRow): KvRecord {
  const rec: KvRecord = {
    key: view(r.key),
    value: view(r.value),
    createRevision: r.create_rev,
    modifyRevision: r.mod_rev,
  };
  if (r.expires_at !== null) rec.expiresAt = r.expires_at;
  return rec;
}

const statements = new WeakMap<Database.Database, Record<string, Database.Statement>>();

function prepare(db: Database.Database): Record<string, Database.Statement> {
  let st = statements.get(db);
  if (!st) {
    st = {
      get: db.prepare('SELECT key, value, create_rev, mod_rev, expires_at FROM kv WHERE pid = ? AND key = ?'),
      put: db.prepare(
        `INSERT INTO kv (pid, key, value, create_rev, mod_rev, expires_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (pid, key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, expires_at = excluded.expires_at`,
      ),
      del: db.prepare('DELETE FROM kv WHERE pid = ? AND key = ?'),
      scan: db.prepare(
        `SELECT key, value, create_rev, mod_rev, expires_at FROM kv
         WHERE pid = @pid AND key >= @start AND (@end IS NULL OR key < @end) ORDER BY key LIMIT @limit`,
      ),
      clearKv: db.prepare('DELETE FROM kv WHERE pid = ?'),
      clearSessions: db.prepare('DELETE FROM sessions WHERE pid = ?'),
      session: db.prepare('SELECT client_id, last_seq, response FROM sessions WHERE pid = ? AND client_id = ?'),
      saveSession: db.prepare(
        `INSERT INTO sessions (pid, client_id, last_seq, response) VALUES (?, ?, ?, ?)
         ON CONFLICT (pid, client_id) DO UPDATE SET last_seq = excluded.last_seq, response = excluded.response`,
      ),
    };
    statements.set(db, st);
  }
  return st;
}

/** One partition's KV data and sessions in the node's SQLite file. */
export class SqlitePartitionKv implements PartitionKv {
  private readonly st: Record<string, Database.Statement>;

  constructor(
    db: Database.Database,
    private readonly partition: string,
  ) {
    this.st = prepare(db);
  }

  get(key: Uint8Array): KvRecord | undefined {
    const r = this.st.get?.get(this.partition, blob(key)) as KvRow | undefined;
    return r && toRecord(r);
  }

  put(key: Uint8Array, value: Uint8Array, opts: KvPutOptions): void {
    this.st.put?.run(this.partition, blob(key), blob(value), opts.revision, opts.revision, opts.expiresAt ?? null);
  }

  delete(key: Uint8Array): boolean {
    return (this.st.del?.run(this.partition, blob(key)).changes ?? 0) > 0;
  }

  scan(opts: KvScanOptions = {}): KvRecord[] {
    const rows = this.st.scan?.all({
      pid: this.partition,
      start: opts.start ? blob(opts.start) : Buffer.alloc(0),
      end: opts.end ? blob(opts.end) : null,
      limit: opts.limit ?? -1,
    }) as KvRow[];
    return rows.map(toRecord);
  }

  clear(): void {
    this.st.clearKv?.run(this.partition);
    this.st.clearSessions?.run(this.partition);
  }

  session(clientId: string): ClientSession | undefined {
    const r = this.st.session?.get(this.partition, clientId) as
      | { client_id: string; last_seq: number; response: Uint8Array }
      | undefined;
    return r && { clientId: r.client_id, lastSequence: r.last_seq, lastResponse: view(r.response) };
  }

  saveSession(session: ClientSession): void {
    this.st.saveSession?.run(this.partition, session.clientId, session.lastSequence, blob(session.lastResponse));
  }
}
