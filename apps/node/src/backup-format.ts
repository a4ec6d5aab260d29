import type { SnapshotMeta } from '@cohort/core';
import { decodeChunk } from '@cohort/kv';

/**
 * A backup file: one JSON header line, then the group's snapshot chunks
 * (the KV snapshot codec's, each with its own CRC-32C) as 4-byte big-endian
 * length-prefixed frames, then a zero-length frame that marks the end (a file
 * without it was cut short and is refused).
 */
export interface BackupHeader {
  format: 'cohort-backup';
  version: 1;
  /** The group the snapshot is of. */
  group: string;
  /** The applied position the snapshot is consistent at. */
  index: number;
  term: number;
  /** When the backup was taken (ISO 8601, the serving node's clock). */
  createdAt: string;
  /** The node that served it. */
  node: string;
}

export const BACKUP_CONTENT_TYPE = 'application/vnd.cohort.backup';
const FORMAT = 'cohort-backup';
/** The largest frame read back; a larger length means a damaged file. */
const MAX_FRAME = 64 * 1024 * 1024;

/** Refused backup bytes: the message says what is wrong. */
export class BackupFormatError extends Error {
  override readonly name = 'BackupFormatError';
}

/** The header line of a backup of `group` at `meta`. */
export function backupHeader(group: string, meta: SnapshotMeta, node: string): Uint8Array {
  const h: BackupHeader = {
    format: FORMAT,
    version: 1,
    group,
    index: meta.index,
    term: meta.term,
    createdAt: new Date().toISOString(),
    node,
  };
  return Buffer.from(`${JSON.stringify(h)}\n`);
}

/** One frame: a chunk's length then the chunk; an empty chunk ends the backup. */
export function backupFrame(chunk: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(4 + chunk.length);
  out.writeUInt32BE(chunk.length, 0);
  out.set(chunk, 4);
  return out;
}

/**
 * Reads a backup from `bytes` (a file or request stream): yields the header,
 * then each chunk decoded and checked (rows and sessions). Throws
 * BackupFormatError for anything but a complete, intact backup: a wrong
 * header, a damaged chunk, a missing end marker, bytes after it.
 */
export async function* readBackup(
  bytes: AsyncIterable<Uint8Array | string>,
): AsyncGenerator<
  { type: 'header'; header: BackupHeader } | { type: 'chunk'; chunk: ReturnType<typeof decodeChunk> },
  void
> {
  let buf = Buffer.alloc(0);
  let header: BackupHeader | undefined;
  let seq = 0;
  let ended = false;
  let sections = 1;
  for await (const piece of bytes) {
    buf = Buffer.concat([buf, typeof piece === 'string' ? Buffer.from(piece) : piece]);
    for (;;) {
      if (ended) {
        if (buf.length === 0) break;
        // A backup of several partitions is one section per partition, each a header line and its chunks.
        if (buf[0] !== 0x7b) throw new BackupFormatError('bytes follow the end of the backup: the file is damaged');
        header = undefined;
        ended = false;
        seq = 0;
        sections++;
        continue;
      }
      if (header === undefined) {
        const nl = buf.indexOf(10);
        if (nl < 0) {
          if (buf.length > 4096) throw new BackupFormatError('not a Cohort backup: no header line');
          break;
        }
        header = parseHeader(buf.subarray(0, nl).toString('utf8'));
        buf = buf.subarray(nl + 1);
        yield { type: 'header', header };
        continue;
      }
      if (buf.length < 4) break;
      const len = buf.readUInt32BE(0);
      if (len > MAX_FRAME) throw new BackupFormatError(`chunk ${seq} claims ${len} bytes: the file is damaged`);
      if (len === 0) {
        ended = true;
        buf = buf.subarray(4);
        continue;
      }
      if (buf.length < 4 + len) break;
      const raw = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      let chunk: ReturnType<typeof decodeChunk>;
      try {
        chunk = decodeChunk(header.group, seq, new Uint8Array(raw));
      } catch (err) {
        throw new BackupFormatError(`the backup is damaged: ${(err as Error).message}`);
      }
      seq++;
      yield { type: 'chunk', chunk };
    }
  }
  if (header === undefined) throw new BackupFormatError('not a Cohort backup: it is empty or has no header line');
  if (!ended) {
    throw new BackupFormatError(
      `the backup is cut short after ${seq} chunks of section ${sections} (no end marker): take it again with cohort backup`,
    );
  }
}

function parseHeader(line: string): BackupHeader {
  let h: Partial<BackupHeader>;
  try {
    h = JSON.parse(line) as Partial<BackupHeader>;
  } catch {
    throw new BackupFormatError('not a Cohort backup: the first line is not its JSON header');
  }
  if (h.format !== FORMAT) throw new BackupFormatError('not a Cohort backup: the header names another format');
  if (h.version !== 1) {
    throw new BackupFormatError(`backup format version ${String(h.version)} is not one this build reads (1)`);
  }
  if (typeof h.group !== 'string' || typeof h.index !== 'number') {
    throw new BackupFormatError('the backup header lacks its group or index');
  }
  return h as BackupHeader;
}
