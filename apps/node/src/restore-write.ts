import { type KvClientRequest, type KvClientWrite, type KvResponse, decodeItems } from '@cohort/kv';
import type { KvCollectionType } from '@cohort/storage';

/** A row of a backup, as `cohort restore` sends it. */
export interface RestoreRow {
  key: Uint8Array;
  value: Uint8Array;
  expiresAt?: number;
  /** A hash or list (absent: a string). */
  type?: KvCollectionType;
}

/**
 * The write that restores one row: a string as SET (with its deadline); a
 * hash or list as one atomic entry deleting the key, writing the whole
 * collection (HSET or RPUSH) and setting its deadline.
 */
export function restoreWrite(r: RestoreRow): KvClientRequest {
  if (r.type === undefined) {
    return {
      kind: 'write',
      write: {
        op: 'set',
        key: r.key,
        value: r.value,
        condition: 'always',
        expiry: r.expiresAt === undefined ? { kind: 'none' } : { kind: 'at', ms: r.expiresAt },
        returnOld: false,
      },
    };
  }
  const writes: KvClientWrite[] = [
    { op: 'del', keys: [r.key] },
    { op: 'collection', name: r.type === 'hash' ? 'hset' : 'rpush', keys: [r.key], args: decodeItems(r.value) },
  ];
  if (r.expiresAt !== undefined) {
    writes.push({
      op: 'expire',
      key: r.key,
      deadline: { kind: 'at', ms: r.expiresAt },
      flag: 'always',
      command: 'restore',
    });
  }
  return { kind: 'write', write: { op: 'exec', writes, watch: [] } };
}

/** The first answer of a restore batch that failed (a command's error inside an EXEC included). */
export function restoreFailure(res: KvResponse[]): KvResponse | undefined {
  return res.find(
    (r) =>
      r.type === 'failure' || r.type === 'error' || (r.type === 'list' && r.items?.some((i) => i.type === 'error')),
  );
}
