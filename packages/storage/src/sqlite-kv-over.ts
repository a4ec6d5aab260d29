import { type KvCollectionType, type KvRecord, type ReplacedRow, putRevisions } from './types.js';

/** Who learns what the writer found for an {@link OverPut}: the partition that made it. */
export interface OverOwner {
  /** The writer committed `m`'s row: `create` and `version` as it wrote them, and what it replaced (`OVER_*`). */
  reported(m: OverPut, create: number, version: number, found: number): void;
  /** Works out `m`'s create revision and version now (a read of its record before the writer reported). */
  resolveOf(m: OverPut): void;
}

/**
 * An {@link OverPut}'s record: its create revision and version are read through the put, and worked out
 * first if not known yet. A class rather than an object literal with getters: those made two closures and
 * their accessor pairs for every put, and the object a dictionary of its own (about 600 bytes a record,
 * measured in a leader's heap snapshot, with a watch history holding 10,000-20,000 of them).
 */
export class OverRecord implements KvRecord {
  // Set only when the put has them, as a plain record would be.
  declare expiresAt?: number;
  declare type?: KvCollectionType;

  constructor(
    private readonly put: OverPut,
    readonly key: Uint8Array,
    readonly value: Uint8Array,
    readonly modifyRevision: number,
  ) {}

  get createRevision(): number {
    const m = this.put;
    if (!m.known) m.owner.resolveOf(m);
    return m.create;
  }

  get version(): number {
    const m = this.put;
    if (!m.known) m.owner.resolveOf(m);
    return m.version;
  }

  /** The same record with `key` and `value` (equal bytes elsewhere), its revisions still read through the put. */
  withBytes(key: Uint8Array, value: Uint8Array): KvRecord {
    const rec = new OverRecord(this.put, key, value, this.modifyRevision);
    if (this.expiresAt !== undefined) rec.expiresAt = this.expiresAt;
    if (this.type !== undefined) rec.type = this.type;
    return rec;
  }
}

/**
 * A put over whatever row its key had (`KvPutOptions.now`), made without
 * reading that row: its create revision and version are unknown until the
 * writer reports what it found, or until a read works them out first (from
 * the stored row and the puts before it in the same chain, see
 * `SqlitePartitionKv`). `record` is the put's record: reading its create
 * revision or version before they are known works them out.
 */
export class OverPut implements ReplacedRow {
  create = 0;
  version = 0;
  /** Whether {@link create} and {@link version} hold. */
  known = false;
  /** The put's record; its create revision and version are read through this object. */
  readonly record: KvRecord;

  constructor(
    readonly owner: OverOwner,
    key: Uint8Array,
    value: Uint8Array,
    readonly revision: number,
    readonly expiresAt: number | undefined,
    /** The write's log time: a row expired by then counts as absent. */
    readonly now: number,
    /** The job that writes it. */
    readonly seq: number,
    /**
     * The put over the same key before it, while that one's create revision and version were unknown
     * (undefined: the key's row in the file is what this put replaces, unless the file holds this put's
     * predecessors already; see `SqlitePartitionKv.resolve`). Dropped once known ({@link settle}), so a
     * record kept (a watch event's) holds no chain.
     */
    public prev: OverPut | undefined,
    /** Whether what it finds (a row or none) changes the partition's maintained row count when learned. */
    public counts: boolean,
    /** The key's row key in the partition's overlay, until {@link known}: what working them out needs. */
    public rk: string | undefined,
    type?: KvRecord['type'],
  ) {
    const rec = new OverRecord(this, key, value, revision);
    if (expiresAt !== undefined) rec.expiresAt = expiresAt;
    if (type !== undefined) rec.type = type;
    this.record = rec;
  }

  /** Its create revision, once {@link known} (as the row it leaves, for the put after it). */
  get createRevision(): number {
    return this.create;
  }

  /** Records what the put left: `base` is the row it replaced (undefined: none); false if already known. */
  learn(base: ReplacedRow | undefined): boolean {
    if (this.known) return false;
    const r = putRevisions(base, this.revision, this.now);
    this.settle(r.createRevision, r.version);
    return true;
  }

  /** Records the create revision and version the put left. */
  settle(create: number, version: number): void {
    this.create = create;
    this.version = version;
    this.known = true;
    this.prev = undefined;
    this.rk = undefined;
  }
}
