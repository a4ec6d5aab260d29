/**
 * Where keys are served: the one seam that maps the keys of a request (a
 * multi-key command, a transaction) to the partition that serves them.
 *
 * Keys hash into 16,384 slots exactly as in Redis Cluster: CRC16 (CCITT,
 * XMODEM variant) of the key, or of its hash tag, modulo 16,384. The hash
 * tag is what lies between the first `{` and the first `}` after it, when
 * that is not empty, so `{user1}.name` and `{user1}.mail` share a slot.
 * Slots map onto P partitions as P contiguous ranges, each replicated by
 * its own group (`p0` .. `p{P-1}`).
 *
 * With one partition every request routes, whatever its keys (a single
 * Redis's semantics, as before partitions). With several, a request whose
 * keys span slots is refused with Redis Cluster's CROSSSLOT error (keys in
 * one slot stay together whatever the layout, so what is accepted does not
 * depend on P); {@link routeKeys} still tells how its keys split over the
 * partitions, for the reads a node fans out for plain clients.
 */

/** The slots of the key space, as in Redis Cluster. */
export const SLOTS = 16384;

/** CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster hashes keys. */
const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let b = 0; b < 8; b++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** CRC16-CCITT (XMODEM) of `bytes[from, to)`. */
export function crc16(bytes: Uint8Array, from = 0, to = bytes.length): number {
  let crc = 0;
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc;
}

const OPEN = 0x7b; // '{'
const CLOSE = 0x7d; // '}'

/** The slot of `key` (Redis Cluster's `keyHashSlot`: the hash tag's CRC16 when it has a non-empty one). */
export function slotOfKey(key: Uint8Array): number {
  const open = key.indexOf(OPEN);
  if (open >= 0) {
    const close = key.indexOf(CLOSE, open + 1);
    if (close > open + 1) return crc16(key, open + 1, close) & (SLOTS - 1);
  }
  return crc16(key) & (SLOTS - 1);
}

/** The most partitions a cluster may have: one slot each. */
export const MAX_PARTITIONS = SLOTS;

/**
 * How the slots map onto `partitions` partitions: slot `s` belongs to
 * partition `floor(s * P / SLOTS)`, so each partition holds one contiguous
 * range, the ranges cover every slot once and differ in size by one at most.
 */
export class SlotMap {
  constructor(readonly partitions: number) {
    if (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
      throw new RangeError(`partitions must be a whole number from 1 to ${MAX_PARTITIONS}, got ${partitions}`);
    }
  }

  /** The partition holding `slot`. */
  partitionOfSlot(slot: number): number {
    return Math.floor((slot * this.partitions) / SLOTS);
  }

  /** The partition serving `key`. */
  partitionOfKey(key: Uint8Array): number {
    return this.partitions === 1 ? 0 : this.partitionOfSlot(slotOfKey(key));
  }

  /** The slots of partition `p`: the first and the last (inclusive), as CLUSTER SLOTS states them. */
  slotRange(p: number): [number, number] {
    return [Math.ceil((p * SLOTS) / this.partitions), Math.ceil(((p + 1) * SLOTS) / this.partitions) - 1];
  }
}

/** One partition serving the whole key space (a cluster created without partitions). */
export const SINGLE_PARTITION = new SlotMap(1);

/** The keys of a request that one partition serves: their positions in the request. */
export interface RouteSplit {
  group: number;
  indexes: number[];
}

/**
 * A request's route: the partition serving all its keys and their slot (the
 * first key's; none for a keyless request), or, when the keys span slots of
 * a partitioned key space, how they split over the partitions (in the order
 * each partition's first key appears).
 */
export type Route = { group: number; slot?: number } | { crossSlot: true; splits: RouteSplit[] };

/** The route of a request touching `keys` on `map` (none: the first partition). */
export function routeKeys(keys: readonly Uint8Array[], map: SlotMap = SINGLE_PARTITION): Route {
  const first = keys[0];
  if (first === undefined) return { group: 0 };
  const slot = slotOfKey(first);
  if (map.partitions === 1) return { group: 0, slot };
  let cross = false;
  for (let i = 1; i < keys.length && !cross; i++) cross = slotOfKey(keys[i]!) !== slot;
  if (!cross) return { group: map.partitionOfSlot(slot), slot };
  const byGroup = new Map<number, number[]>();
  keys.forEach((k, i) => {
    const g = map.partitionOfKey(k);
    const list = byGroup.get(g);
    if (list) list.push(i);
    else byGroup.set(g, [i]);
  });
  return { crossSlot: true, splits: [...byGroup].map(([group, indexes]) => ({ group, indexes })) };
}

/** The partition serving `key` on `map`. */
export function groupOfKey(key: Uint8Array, map: SlotMap = SINGLE_PARTITION): number {
  return map.partitionOfKey(key);
}

/** The group id of partition `p` (`p0`, `p1`, ...). */
export function partitionGroup(p: number): string {
  return `p${p}`;
}

/** Redis Cluster's answer to a request whose keys span slots. */
export const CROSSSLOT_MESSAGE = "CROSSSLOT Keys in request don't hash to the same slot";
