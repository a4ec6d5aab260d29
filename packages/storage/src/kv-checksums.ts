import { crc32c, crc32cNumber, crc32cString } from './crc32c.js';
import type { AppliedState, ClientSession } from './types.js';

const NO_EXPIRY = -1;

const seeds = new Map<string, number>();

/** The CRC of a partition name, the start of every row's CRC: computed once per name. */
function seed(partition: string): number {
  let c = seeds.get(partition);
  if (c === undefined) {
    c = crc32cString(partition, 0);
    if (seeds.size < 65_536) seeds.set(partition, c);
  }
  return c;
}

/**
 * CRC-32C of a KV row over its partition name, key, value, revisions, expiry
 * (-1 for none) and version. A version of 1 adds nothing, so the rows written
 * before versions were stored (schema 4, where every row reads as version 1)
 * keep their checksums: migration 5 adds the column without rewriting rows.
 * The type code (0 a string, 1 a hash, 2 a list) likewise adds nothing when
 * 0, so migration 6 rewrites no row either.
 */
export function kvRowCrc(
  partition: string,
  key: Uint8Array,
  value: Uint8Array,
  createRevision: number,
  modifyRevision: number,
  expiresAt: number | undefined | null,
  version = 1,
  type = 0,
): number {
  let c = seed(partition);
  c = crc32c(key, crc32cNumber(key.length, c));
  c = crc32c(value, crc32cNumber(value.length, c));
  c = crc32cNumber(createRevision, c);
  c = crc32cNumber(modifyRevision, c);
  c = crc32cNumber(expiresAt ?? NO_EXPIRY, c);
  if (version !== 1) c = crc32cNumber(version, c);
  return type === 0 ? c : crc32cNumber(type + 0x7479_7065, c);
}

const clientSeeds = new Map<string, number>();

/** The CRC of a partition name and client id, the start of a session's CRCs: memoized for recent clients. */
function clientSeed(partition: string, clientId: string): number {
  const k = `${partition}\u0000${clientId}`;
  let c = clientSeeds.get(k);
  if (c === undefined) {
    c = crc32cString(clientId, seed(partition));
    if (clientSeeds.size >= 4096) clientSeeds.clear();
    clientSeeds.set(k, c);
  }
  return c;
}

/** CRC-32C of a session row. */
export function sessionCrc(partition: string, s: ClientSession): number {
  const c = clientSeed(partition, s.clientId);
  return crc32cNumber(s.lastActive, crc32cNumber(s.lowWater, c));
}

/** CRC-32C of a stored session response. */
export function responseCrc(partition: string, clientId: string, seq: number, response: Uint8Array): number {
  const c = crc32cNumber(seq, clientSeed(partition, clientId));
  return crc32c(response, c);
}

/** CRC-32C of a partition's row: its current generation, applied state and log time. */
export function partitionCrc(partition: string, generation: number, applied: AppliedState, logTime: number): number {
  let c = crc32cNumber(logTime, crc32cNumber(generation, seed(partition)));
  c = crc32cNumber(applied.index, c);
  c = crc32cNumber(applied.term, c);
  return crc32cString(JSON.stringify(applied.confState), c);
}

/** A key as hex, for error messages. */
export function hexKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
}
