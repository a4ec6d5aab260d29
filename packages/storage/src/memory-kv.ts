import type { MemState } from './memory-state.js';
import { memPartition } from './memory-state.js';
import type { ClientSession, KvPutOptions, KvRecord, KvScanOptions, PartitionKv } from './types.js';

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function copyRecord(r: KvRecord): KvRecord {
  const out: KvRecord = {
    key: r.key.slice(),
    value: r.value.slice(),
    createRevision: r.createRevision,
    modifyRevision: r.modifyRevision,
  };
  if (r.expiresAt !== undefined) out.expiresAt = r.expiresAt;
  return out;
}

/** One partition's KV data inside a {@link MemoryNodeStore}; writes go through the store's durability model. */
export class MemoryPartitionKv implements PartitionKv {
  constructor(
    private readonly partition: string,
    private readonly live: () => MemState,
    private readonly apply: (op: (s: MemState) => void) => void,
  ) {}

  get(key: Uint8Array): KvRecord | undefined {
    const r = this.live().partitions.get(this.partition)?.kv.get(hex(key));
    return r && copyRecord(r);
  }

  put(key: Uint8Array, value: Uint8Array, opts: KvPutOptions): void {
    const k = hex(key);
    const old = this.live().partitions.get(this.partition)?.kv.get(k);
    const rec: KvRecord = {
      key: key.slice(),
      value: value.slice(),
      createRevision: old ? old.createRevision : opts.revision,
      modifyRevision: opts.revision,
    };
    if (opts.expiresAt !== undefined) rec.expiresAt = opts.expiresAt;
    this.apply((s) => memPartition(s, this.partition).kv.set(k, rec));
  }

  delete(key: Uint8Array): boolean {
    const k = hex(key);
    if (!this.live().partitions.get(this.partition)?.kv.has(k)) return false;
    this.apply((s) => memPartition(s, this.partition).kv.delete(k));
    return true;
  }

  scan(opts: KvScanOptions = {}): KvRecord[] {
    const p = this.live().partitions.get(this.partition);
    if (!p) return [];
    const start = opts.start && hex(opts.start);
    const end = opts.end && hex(opts.end);
    // Hex strings of bytes sort exactly as the bytes do.
    const keys = [...p.kv.keys()].filter((k) => (start === undefined || k >= start) && (end === undefined || k < end));
    keys.sort();
    const limited = opts.limit === undefined ? keys : keys.slice(0, opts.limit);
    return limited.map((k) => copyRecord(p.kv.get(k) as KvRecord));
  }

  clear(): void {
    this.apply((s) => s.partitions.delete(this.partition));
  }

  session(clientId: string): ClientSession | undefined {
    const s = this.live().partitions.get(this.partition)?.sessions.get(clientId);
    return s && { ...s, lastResponse: s.lastResponse.slice() };
  }

  saveSession(session: ClientSession): void {
    const copy = { ...session, lastResponse: session.lastResponse.slice() };
    this.apply((s) => memPartition(s, this.partition).sessions.set(copy.clientId, copy));
  }
}
