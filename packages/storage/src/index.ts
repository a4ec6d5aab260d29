/** Durable state for Cohort on SQLite (better-sqlite3): per-group hard state, CRC-checked log entries, chunked snapshots, KV tables, group commit; and an in-memory store with the same contract for simulation. */
export const PACKAGE = '@cohort/storage';
