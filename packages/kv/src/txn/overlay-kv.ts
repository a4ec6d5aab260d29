import { type KvPutOptions, type KvRecord, type KvScanOptions, type PartitionKv, putRevisions } from '@cohort/storage';
import { rowId } from './intent-codec.js';

/**
 * A partition with writes held aside: reads see the writes made through it
 * over the partition's rows, which stay untouched. A transaction's prepare
 * runs each branch's operations on one to learn what the branch answers and
 * leaves in each key, writing nothing. Only the point operations a
 * transaction may hold are served (no scans: those are refused before).
 */
export class OverlayKv {
  /** By key (latin1); undefined: deleted. */
  readonly writes = new Map<string, KvRecord | undefined>();

  constructor(private readonly base: PartitionKv) {}

  /** This overlay as a `PartitionKv` for `applyOp`. */
  asPartition(): PartitionKv {
    const refuse = (what: string) => () => {
      throw new Error(`a transaction's branch cannot ${what}`);
    };
    return new Proxy(this.base, {
      get: (target, prop) => {
        switch (prop) {
          case 'get':
            return (key: Uint8Array) => this.get(key);
          case 'put':
            return (key: Uint8Array, value: Uint8Array, opts: KvPutOptions) => this.put(key, value, opts);
          case 'delete':
            return (key: Uint8Array) => this.delete(key);
          case 'scan':
            return (_opts?: KvScanOptions) => refuse('scan keys')();
          case 'count':
            return refuse('count keys');
          default: {
            const v = Reflect.get(target, prop, target);
            return typeof v === 'function' ? v.bind(target) : v;
          }
        }
      },
    });
  }

  get(key: Uint8Array): KvRecord | undefined {
    const id = rowId(key);
    if (this.writes.has(id)) {
      const w = this.writes.get(id);
      return w && { ...w };
    }
    return this.base.get(key);
  }

  put(key: Uint8Array, value: Uint8Array, opts: KvPutOptions): KvRecord {
    const old = this.get(key);
    const { createRevision, version } = putRevisions(old, opts.revision, opts.now);
    const rec: KvRecord = {
      key: key.slice(),
      value: value.slice(),
      createRevision,
      modifyRevision: opts.revision,
      version,
    };
    if (opts.expiresAt !== undefined) rec.expiresAt = opts.expiresAt;
    if (opts.type !== undefined) rec.type = opts.type;
    this.writes.set(rowId(key), rec);
    return { ...rec };
  }

  delete(key: Uint8Array): boolean {
    const existed = this.get(key) !== undefined;
    this.writes.set(rowId(key), undefined);
    return existed;
  }
}
