/**
 * The snapshot pacer is shared with the other engines' hosts and lives in
 * `@cohort/core`; this module keeps the host's imports and raft's public
 * export (`SnapshotPacer` from `@cohort/raft`) where they were.
 */
export { SnapshotPacer, type SnapshotPacerOptions } from '@cohort/core';
