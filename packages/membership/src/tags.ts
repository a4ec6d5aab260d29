import { ConfigError } from '@cohort/core';
import type { Member, Tags } from './types.js';

/** Bounds on a member's tags. */
export interface TagLimits {
  /** @default 16 */
  readonly maxTags?: number;
  /** Total bytes of keys and values. @default 512 */
  readonly maxBytes?: number;
}

/** Checks `tags` against the limits; throws ConfigError naming the offending tag. */
export function validateTags(tags: Tags, limits: TagLimits = {}): void {
  const maxTags = limits.maxTags ?? 16;
  const maxBytes = limits.maxBytes ?? 512;
  const entries = Object.entries(tags);
  if (entries.length > maxTags) throw new ConfigError(`too many tags: ${entries.length} (at most ${maxTags})`);
  let bytes = 0;
  for (const [k, v] of entries) {
    if (k.length === 0) throw new ConfigError('tag keys must not be empty');
    if (typeof v !== 'string') throw new ConfigError(`tag ${k} must have a string value`);
    bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (bytes > maxBytes) throw new ConfigError(`tags take ${bytes} bytes (at most ${maxBytes}); shorten them`);
}

/** Whether two tag sets hold the same pairs. */
export function sameTags(a: Tags, b: Tags): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}

/** Members whose tag `key` equals `value`. */
export function filterByTag(members: Iterable<Member>, key: string, value: string): Member[] {
  return [...members].filter((m) => m.tags[key] === value);
}

/** Members carrying every pair of `wanted`. */
export function filterByAllTags(members: Iterable<Member>, wanted: Tags): Member[] {
  const pairs = Object.entries(wanted);
  return [...members].filter((m) => pairs.every(([k, v]) => m.tags[k] === v));
}
