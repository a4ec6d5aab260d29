import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** What {@link scanWal} found in a SQLite write-ahead log. */
export interface WalReport {
  /** The WAL file exists and holds at least a header. */
  present: boolean;
  /** Whole frames that pass SQLite's checks (salt and cumulative checksum). */
  validFrames: number;
  /** Valid frames up to and including the last commit frame: what SQLite will recover. */
  committedFrames: number;
  /**
   * Bytes past the committed frames that SQLite will discard: frames of a
   * transaction whose commit frame never made it to disk, or a partial frame.
   * With `synchronous=FULL` such a transaction was never acknowledged.
   */
  unsyncedTailBytes: number;
  /** Why the WAL is corrupt (acknowledged data would be lost), when it is. */
  corruption?: string;
}

const HEADER = 32;
const FRAME_HEADER = 24;

/** SQLite's WAL checksum: pairs of 32-bit words in the byte order the magic number names. */
function walChecksum(buf: Uint8Array, off: number, len: number, bigEndian: boolean, s: [number, number]): void {
  const view = new DataView(buf.buffer, buf.byteOffset + off, len);
  let s0 = s[0];
  let s1 = s[1];
  for (let i = 0; i < len; i += 8) {
    const x0 = view.getUint32(i, !bigEndian);
    const x1 = view.getUint32(i + 4, !bigEndian);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  s[0] = s0;
  s[1] = s1;
}

/**
 * Reads `<db>-wal` the way SQLite recovers it and tells an unsynced tail
 * (which SQLite silently and rightly drops) from damage that would make
 * SQLite silently drop acknowledged transactions.
 */
export function scanWal(walFile: string): WalReport {
  let fd: number;
  try {
    fd = openSync(walFile, 'r');
  } catch {
    return { present: false, validFrames: 0, committedFrames: 0, unsyncedTailBytes: 0 };
  }
  try {
    const size = fstatSync(fd).size;
    if (size < HEADER) return { present: false, validFrames: 0, committedFrames: 0, unsyncedTailBytes: size };
    const header = new Uint8Array(HEADER);
    readSync(fd, header, 0, HEADER, 0);
    const hv = new DataView(header.buffer);
    const magic = hv.getUint32(0);
    const pageSize = hv.getUint32(8);
    const frameSize = FRAME_HEADER + pageSize;
    const frames = Math.floor((size - HEADER) / frameSize);
    const sum: [number, number] = [0, 0];
    const bigEndian = (magic & 1) === 1;
    walChecksum(header, 0, 24, bigEndian, sum);
    const headerOk =
      (magic === 0x377f0682 || magic === 0x377f0683) &&
      pageSize >= 512 &&
      pageSize <= 65536 &&
      (pageSize & (pageSize - 1)) === 0 &&
      sum[0] === hv.getUint32(24) &&
      sum[1] === hv.getUint32(28);
    if (!headerOk) {
      // A bad header makes SQLite ignore every frame after it.
      const report = { present: true, validFrames: 0, committedFrames: 0, unsyncedTailBytes: size - HEADER };
      return frames > 0 || size - HEADER > 0
        ? { ...report, corruption: `${walFile}: the WAL header is damaged; SQLite would drop every frame in it` }
        : report;
    }
    const salt1 = hv.getUint32(16);
    const salt2 = hv.getUint32(20);
    const frame = new Uint8Array(frameSize);
    const fv = new DataView(frame.buffer);
    let valid = 0;
    let committed = 0;
    let damagedAt = -1;
    let damagedBySalt = false;
    /** Frames of this WAL generation carrying a commit mark, from the damaged frame on. */
    let commitsAfter = 0;
    let saltMatchAfter = false;
    for (let f = 0; f < frames; f++) {
      readSync(fd, frame, 0, frameSize, HEADER + f * frameSize);
      const saltsMatch = fv.getUint32(8) === salt1 && fv.getUint32(12) === salt2;
      const isCommit = fv.getUint32(4) !== 0;
      if (damagedAt >= 0) {
        if (saltsMatch) {
          saltMatchAfter = true;
          if (isCommit) commitsAfter++;
        }
        continue;
      }
      if (saltsMatch) {
        const s: [number, number] = [sum[0], sum[1]];
        walChecksum(frame, 0, 8, bigEndian, s);
        walChecksum(frame, FRAME_HEADER, pageSize, bigEndian, s);
        if (s[0] === fv.getUint32(16) && s[1] === fv.getUint32(20)) {
          sum[0] = s[0];
          sum[1] = s[1];
          valid = f + 1;
          if (isCommit) committed = valid;
          continue;
        }
        if (isCommit) commitsAfter++;
      }
      // The first frame SQLite will not accept: the end of the log, or damage.
      damagedAt = f;
      damagedBySalt = !saltsMatch;
    }
    // Frames of an older WAL generation (other salts) follow the live ones and are ignored by SQLite.
    // A crash while the last transaction was written (or while SQLite rewrote its checksums) leaves at
    // most that one transaction's commit frame past the damage; more, or live frames after a frame with
    // foreign salts, mean acknowledged transactions would be cut off.
    if (damagedAt >= 0 && (commitsAfter >= 2 || (damagedBySalt && saltMatchAfter))) {
      return {
        present: true,
        validFrames: valid,
        committedFrames: committed,
        unsyncedTailBytes: 0,
        corruption:
          `${walFile}: frame ${damagedAt} is damaged and ${commitsAfter} committed transaction(s) follow it; ` +
          'SQLite would drop acknowledged writes',
      };
    }
    const lastLive = damagedAt < 0 ? valid : damagedBySalt ? damagedAt : frames;
    return {
      present: true,
      validFrames: valid,
      committedFrames: committed,
      unsyncedTailBytes: (lastLive - committed) * frameSize + (lastLive === frames ? (size - HEADER) % frameSize : 0),
    };
  } finally {
    closeSync(fd);
  }
}
