import type { KvRecord, KvScanOptions, PartitionKv } from '@cohort/storage';
import { withMethods } from '../method-proxy.js';
import { RESERVED_END, RESERVED_PREFIX, isReservedKey } from './keyspace.js';

function before(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) < 0;
}

/**
 * A partition as client commands and reads see it: the reserved rows
 * (intents, transaction records) are not there. Reads of a reserved key find
 * nothing, scans skip the reserved range, the count leaves them out. Writes
 * pass through (the state machine refuses client commands naming a reserved
 * key before they apply).
 */
export function clientView(kv: PartitionKv): PartitionKv {
  const reservedCount = (): number => {
    let n = 0;
    let start = RESERVED_PREFIX;
    for (;;) {
      const page = kv.scan({ start, end: RESERVED_END, limit: 1024 });
      n += page.length;
      const last = page.at(-1);
      if (last === undefined || page.length < 1024) return n;
      start = Buffer.concat([last.key, new Uint8Array(1)]);
    }
  };
  const scan = (opts: KvScanOptions = {}): KvRecord[] => {
    const limit = opts.limit ?? -1;
    const start = opts.start;
    const end = opts.end;
    const out: KvRecord[] = [];
    // The part below the reserved range, then the part above it.
    if (start === undefined || before(start, RESERVED_PREFIX)) {
      const lowEnd = end !== undefined && before(end, RESERVED_PREFIX) ? end : RESERVED_PREFIX;
      const o: KvScanOptions = { end: lowEnd };
      if (start !== undefined) o.start = start;
      if (limit >= 0) o.limit = limit;
      out.push(...kv.scan(o));
      if (limit >= 0 && out.length >= limit) return out;
    }
    if (end !== undefined && !before(RESERVED_END, end)) return out;
    const highStart = start !== undefined && before(RESERVED_END, start) ? start : RESERVED_END;
    const o: KvScanOptions = { start: highStart };
    if (end !== undefined) o.end = end;
    if (limit >= 0) o.limit = limit - out.length;
    out.push(...kv.scan(o));
    return out;
  };
  const methods = new Map<PropertyKey, unknown>([
    ['get', (key: Uint8Array) => (isReservedKey(key) ? undefined : kv.get(key))],
    ['scan', scan],
    ['count', () => kv.count() - reservedCount()],
    [
      'expired',
      (nowMs: number, limit: number) => kv.expired(nowMs, limit).filter((k: Uint8Array) => !isReservedKey(k)),
    ],
  ]);
  return withMethods(kv, methods);
}
