import { CodecError, type Snapshot } from '@cohort/core';
import type { KvInstaller } from '@cohort/storage';
import { KvSnapshotPb } from './generated/kv-command.js';

/** The only version of the in-memory image format (before state lived on disk). */
const LEGACY_VERSION = 1;

/**
 * Writes an image of the old in-memory format (`KvSnapshotPb` version 1) into
 * an installer: each key gets the snapshot's index as both revisions, since
 * the old format kept none. The caller commits.
 */
export function installLegacy(partition: string, snapshot: Snapshot, installer: KvInstaller): void {
  let pb: KvSnapshotPb;
  try {
    pb = KvSnapshotPb.decode(snapshot.data);
  } catch (err) {
    throw new CodecError(
      `partition ${partition}: legacy snapshot at ${snapshot.meta.index} (${snapshot.data.length} bytes) does not decode: ${(err as Error).message}`,
    );
  }
  if (pb.version !== LEGACY_VERSION) {
    throw new CodecError(
      `partition ${partition}: legacy snapshot at ${snapshot.meta.index} has version ${pb.version}; this build reads version ${LEGACY_VERSION} only (upgrade the node)`,
    );
  }
  if (pb.values.length !== pb.keys.length || pb.expiresAt.length !== pb.keys.length) {
    throw new CodecError(
      `partition ${partition}: legacy snapshot at ${snapshot.meta.index} is inconsistent: ${pb.keys.length} keys, ${pb.values.length} values, ${pb.expiresAt.length} expiries`,
    );
  }
  const revision = snapshot.meta.index;
  pb.keys.forEach((key, i) => {
    const expiresAt = Number(pb.expiresAt[i]);
    const value = pb.values[i] as Uint8Array;
    installer.put(
      expiresAt === 0
        ? { key, value, createRevision: revision, modifyRevision: revision, version: 1 }
        : { key, value, createRevision: revision, modifyRevision: revision, version: 1, expiresAt },
    );
  });
}
