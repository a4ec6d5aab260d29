/**
 * Where keys are served: the one seam that maps the keys of a request
 * (a multi-key command, a transaction) to the group that serves them. Today
 * one group serves every key, so every request routes; with partitions,
 * keys hash into slots (by their hash tag, as in Redis Cluster) and a
 * request whose keys span groups is refused here, with Redis Cluster's
 * CROSSSLOT error, until cross-partition transactions exist.
 */

/** A request's route: the index of the group serving all its keys, or none when they span groups. */
export type Route = { group: number } | { crossSlot: true };

/** The group count today: one group serves the whole key space. */
const GROUPS = 1;

/** The group serving `key`. */
export function groupOfKey(_key: Uint8Array): number {
  return GROUPS - 1;
}

/** The route of a request touching `keys` (none: any group, the first). */
export function routeKeys(keys: readonly Uint8Array[]): Route {
  const first = keys[0];
  if (first === undefined) return { group: 0 };
  const group = groupOfKey(first);
  return keys.every((k) => groupOfKey(k) === group) ? { group } : { crossSlot: true };
}

/** Redis Cluster's answer to a request whose keys span groups. */
export const CROSSSLOT_MESSAGE = "CROSSSLOT Keys in request don't hash to the same slot";
