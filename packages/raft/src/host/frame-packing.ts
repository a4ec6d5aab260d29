import type { GroupMessage } from '@cohort/core';

/** Bytes a message takes on the wire beyond its ids, context, entries and snapshot data, at most (numbers, tags, lengths). */
const MESSAGE_OVERHEAD = 256;
/** Likewise per entry (index, term, type, tags and lengths). */
const ENTRY_OVERHEAD = 48;

/** An upper estimate of the encoded size of `gm` (an underestimate only costs a refused encode). */
export function estimatedSize(gm: GroupMessage): number {
  const m = gm.message;
  let n =
    MESSAGE_OVERHEAD +
    gm.group.length +
    m.from.length +
    m.to.length +
    m.context.length +
    (m.snapshot ? m.snapshot.data.length + MESSAGE_OVERHEAD : 0);
  for (const e of m.entries) n += e.data.length + ENTRY_OVERHEAD;
  return n;
}

/**
 * Splits `list`, in order, into runs whose estimated sizes sum to at most `maxBytes` (a larger message
 * makes a run of its own): the frames of one peer's round, none encoded whole only to be refused.
 */
export function packBySize(list: readonly GroupMessage[], maxBytes: number): GroupMessage[][] {
  const packs: GroupMessage[][] = [];
  let pack: GroupMessage[] = [];
  let bytes = 0;
  for (const gm of list) {
    const n = estimatedSize(gm);
    if (pack.length > 0 && bytes + n > maxBytes) {
      packs.push(pack);
      pack = [];
      bytes = 0;
    }
    pack.push(gm);
    bytes += n;
  }
  if (pack.length > 0) packs.push(pack);
  return packs;
}
