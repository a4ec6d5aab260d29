import type { KvRecord } from './types.js';

/**
 * A plain record of `r`'s fields with `key` and `value` (its own by default): fields read one by one, not
 * spread, since a pending put's record (`OverRecord`) has its create revision and version as getters of its
 * class, which a spread leaves out; optional fields only when set, as a record made by hand has them.
 */
export function recordOf(r: KvRecord, key: Uint8Array = r.key, value: Uint8Array = r.value): KvRecord {
  const c: KvRecord = {
    key,
    value,
    createRevision: r.createRevision,
    modifyRevision: r.modifyRevision,
    version: r.version,
  };
  if (r.expiresAt !== undefined) c.expiresAt = r.expiresAt;
  if (r.type !== undefined) c.type = r.type;
  return c;
}
