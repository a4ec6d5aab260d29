/**
 * SCAN cursors of one node: a cursor stands for the key an iteration
 * resumes after (the state machine walks keys in byte order), so a key
 * present for the whole iteration is returned exactly once whatever is
 * written meanwhile. Cursors are numbers as in Redis, valid on the node that
 * gave them (any of its connections) while among its last `capacity`; an
 * unknown cursor answers `ERR invalid cursor` rather than restarting.
 */
export class ScanCursors {
  private readonly positions = new Map<bigint, Uint8Array>();
  private next = 1n;

  /** @param capacity cursors kept, the oldest dropped first @default 65536 */
  constructor(private readonly capacity = 65_536) {}

  /** A new cursor resuming after `key`. */
  issue(key: Uint8Array): bigint {
    const id = this.next++;
    this.positions.set(id, key);
    if (this.positions.size > this.capacity) this.positions.delete(this.positions.keys().next().value as bigint);
    return id;
  }

  /** The key `cursor` resumes after, undefined when unknown. */
  resume(cursor: bigint): Uint8Array | undefined {
    return this.positions.get(cursor);
  }
}
