/**
 * The reserved rows of a partition: write intents and transaction records
 * live in the partition's own KV table, so they are applied in the same
 * transaction as the data, carried by snapshots and covered by the digest
 * with no change to storage. Their keys start with {@link RESERVED_PREFIX},
 * which client commands may not use (they are refused with
 * {@link RESERVED_MESSAGE}); every client read hides them.
 */
export const RESERVED_PREFIX: Uint8Array = Buffer.from('\xff\xffcohort.txn\x00', 'latin1');

/** The first key after every reserved key. */
export const RESERVED_END: Uint8Array = Buffer.from('\xff\xffcohort.txn\x01', 'latin1');

/** The answer to a client command naming a reserved key. */
export const RESERVED_MESSAGE = 'ERR keys starting with \\xff\\xffcohort.txn\\x00 are reserved for transactions';

const INTENT = 0x69; // 'i'
const RECORD = 0x72; // 'r'
const MARKER = 0x6d; // 'm'

/** Whether `key` is a reserved row's key. */
export function isReservedKey(key: Uint8Array): boolean {
  if (key.length < RESERVED_PREFIX.length) return false;
  for (let i = 0; i < RESERVED_PREFIX.length; i++) if (key[i] !== RESERVED_PREFIX[i]) return false;
  return true;
}

function reserved(kind: number, rest: Uint8Array): Uint8Array {
  const out = new Uint8Array(RESERVED_PREFIX.length + 1 + rest.length);
  out.set(RESERVED_PREFIX);
  out[RESERVED_PREFIX.length] = kind;
  out.set(rest, RESERVED_PREFIX.length + 1);
  return out;
}

/** The row of the intent on `key`. */
export function intentKey(key: Uint8Array): Uint8Array {
  return reserved(INTENT, key);
}

/** The key an intent row locks. */
export function lockedKey(row: Uint8Array): Uint8Array {
  return row.subarray(RESERVED_PREFIX.length + 1);
}

/** The first and the end of the intent rows, for scans. */
export const INTENTS_START = reserved(INTENT, new Uint8Array());
export const INTENTS_END = reserved(INTENT + 1, new Uint8Array());

/** The row of transaction `txn`'s record. */
export function recordKey(txn: string): Uint8Array {
  return reserved(RECORD, Buffer.from(txn, 'utf8'));
}

/**
 * The row saying a participant resolved `txn` as aborted before its prepare
 * arrived, so a late prepare lays nothing.
 */
export function markerKey(txn: string): Uint8Array {
  return reserved(MARKER, Buffer.from(txn, 'utf8'));
}
