import { CodecError } from '@cohort/core';
import { type KvRecord, type SessionRecord, crc32c, typeCode } from '@cohort/storage';
import { KvSnapshotBodyPb, KvSnapshotChunkPb } from './generated/kv-command.js';
import { rowType } from './request.js';

/**
 * The snapshot chunk format this build writes and the newest it reads. 4
 * added each row's type (hash, list); 3 added each row's version. Formats 2
 * and 3 still install: their rows are strings, format 2's at version 1.
 */
export const KV_SNAPSHOT_FORMAT = 4;
/** The oldest streamed format this build reads. */
const OLDEST_FORMAT = 2;

/** What one snapshot chunk carries. */
export interface SnapshotChunk {
  rows: KvRecord[];
  sessions: SessionRecord[];
  /** The machine's log time (first chunk; 0 in the others). */
  logTime: number;
}

/** Encodes one chunk: the versioned envelope with a CRC-32C over the body. */
export function encodeChunk(chunk: SnapshotChunk): Uint8Array {
  const body = KvSnapshotBodyPb.encode({
    rows: chunk.rows.map((r) => ({
      key: r.key,
      value: r.value,
      createRevision: BigInt(r.createRevision),
      modifyRevision: BigInt(r.modifyRevision),
      expiresAt: BigInt(r.expiresAt ?? 0),
      version: BigInt(r.version),
      type: typeCode(r.type),
    })),
    sessions: chunk.sessions.map((s) => ({
      clientId: s.clientId,
      lowWater: BigInt(s.lowWater),
      lastActive: BigInt(s.lastActive),
      seqs: s.responses.map((r) => BigInt(r.seq)),
      responses: s.responses.map((r) => r.response),
    })),
    logTime: BigInt(chunk.logTime),
  });
  return KvSnapshotChunkPb.encode({ version: KV_SNAPSHOT_FORMAT, body, crc: crc32c(body) });
}

/**
 * Decodes chunk `seq` of a snapshot of `partition`; throws `CodecError` when it
 * does not decode, fails its checksum, or comes from a newer format.
 */
export function decodeChunk(partition: string, seq: number, data: Uint8Array): SnapshotChunk {
  const where = `partition ${partition}: snapshot chunk ${seq}`;
  let env: KvSnapshotChunkPb;
  let body: KvSnapshotBodyPb;
  try {
    env = KvSnapshotChunkPb.decode(data);
  } catch (err) {
    throw new CodecError(`${where} (${data.length} bytes) does not decode: ${(err as Error).message}`);
  }
  if (env.version > KV_SNAPSHOT_FORMAT) {
    throw new CodecError(
      `${where}: snapshot format ${env.version} is newer than this build reads (${KV_SNAPSHOT_FORMAT}); upgrade the node`,
    );
  }
  if (env.version < OLDEST_FORMAT) {
    throw new CodecError(`${where}: snapshot format ${env.version} is not a streamed format this build reads`);
  }
  if (crc32c(env.body) !== env.crc) {
    throw new CodecError(`${where} is corrupt (checksum mismatch); the snapshot must be sent again`);
  }
  try {
    body = KvSnapshotBodyPb.decode(env.body);
  } catch (err) {
    throw new CodecError(`${where}: body does not decode: ${(err as Error).message}`);
  }
  return {
    rows: body.rows.map((r) => {
      const rec: KvRecord = {
        key: r.key,
        value: r.value,
        createRevision: Number(r.createRevision),
        modifyRevision: Number(r.modifyRevision),
        version: env.version < 3 || r.version === 0n ? 1 : Number(r.version),
      };
      if (r.expiresAt !== 0n) rec.expiresAt = Number(r.expiresAt);
      if (env.version >= 4 && r.type !== 0) rec.type = rowType(r.type);
      return rec;
    }),
    sessions: body.sessions.map((s) => {
      if (s.seqs.length !== s.responses.length) {
        throw new CodecError(
          `${where}: session ${s.clientId} has ${s.seqs.length} sequence numbers but ${s.responses.length} responses`,
        );
      }
      return {
        clientId: s.clientId,
        lowWater: Number(s.lowWater),
        lastActive: Number(s.lastActive),
        responses: s.seqs.map((seq, i) => ({ seq: Number(seq), response: s.responses[i] as Uint8Array })),
      };
    }),
    logTime: Number(body.logTime),
  };
}
