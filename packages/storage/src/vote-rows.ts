import type { GroupId, Logger } from '@cohort/core';
import type Database from 'better-sqlite3';
import { compactionRowCrc } from './acceptor-state.js';

/** What a `vp_votes` row costs besides its value: its key, ballot, flags and CRC, and the b-tree's cell. */
const ROW_OVERHEAD = 48;

/**
 * The `vp_votes` rows of one Vertical Paxos acceptor in the file, as slot and
 * bytes, in slot order, and its compaction point: what the store needs to
 * delete the votes a compaction left in jobs of bounded size (see
 * `SqliteNodeStore.saveAcceptor`) without reading the rows back. Changes when
 * a job is queued, not when it commits: the file catches up in queue order.
 */
export class VoteRows {
  /** Bytes of each row, by slot; in ascending slot order unless {@link sorted} is false. */
  private sizes = new Map<number, number>();
  /** A row was written below the highest slot (a `Map` keeps the order of first insertion): sort before taking. */
  private sorted = true;
  private last = 0;
  /** The lowest slot with a row. */
  private lowest = Number.POSITIVE_INFINITY;
  /** Every vote at or below it is dropped (`vp_compaction`), its row deleted now or by a queued job. */
  compacted = 0;

  /** A row written for `slot` (a new vote, or one that replaced the slot's last). */
  wrote(slot: number, valueBytes: number): void {
    // Below the highest slot and new (rare: a vote on a slot the acceptor had skipped): out of order.
    if (slot < this.last && !this.sizes.has(slot)) this.sorted = false;
    this.sizes.set(slot, valueBytes + ROW_OVERHEAD);
    this.last = Math.max(this.last, slot);
    this.lowest = Math.min(this.lowest, slot);
  }

  /** Whether rows at or below the compaction point are still in the file, no job queued to delete them. */
  pending(): boolean {
    return this.lowest <= this.compacted;
  }

  /**
   * Takes the lowest rows at or below the compaction point, at least one and
   * then while fewer than `maxRows` rows and `maxBytes` bytes: the slot to
   * delete every row up to (`vpDropVotes`), or undefined when none is left.
   */
  take(maxBytes: number, maxRows: number): number | undefined {
    if (!this.pending()) return undefined;
    if (!this.sorted) {
      this.sizes = new Map([...this.sizes].sort((a, b) => a[0] - b[0]));
      this.sorted = true;
    }
    let upTo: number | undefined;
    let bytes = 0;
    let rows = 0;
    for (const [slot, size] of this.sizes) {
      if (slot > this.compacted || (rows > 0 && (rows >= maxRows || bytes + size > maxBytes))) break;
      this.sizes.delete(slot);
      upTo = slot;
      bytes += size;
      rows++;
    }
    this.lowest = Number.POSITIVE_INFINITY;
    for (const slot of this.sizes.keys()) {
      this.lowest = slot;
      break;
    }
    return upTo;
  }

  /** Rows in the file, those a compaction left included. */
  get rows(): number {
    return this.sizes.size;
  }
}

/**
 * Reads every acceptor's vote rows at open, having deleted those at or below
 * its compaction point: a crash left them before the jobs deleting them ran
 * (a clean close deletes them). A compaction row failing its CRC leaves the
 * group's rows as they are, for `loadAcceptor` to report.
 */
export function loadVoteRows(db: Database.Database, file: string, log: Logger): Map<GroupId, VoteRows> {
  const groups = new Map<GroupId, VoteRows>();
  const drop = db.prepare('DELETE FROM vp_votes WHERE name = ? AND slot <= ?');
  for (const c of db.prepare('SELECT name, slot, crc FROM vp_compaction').all() as {
    name: string;
    slot: number;
    crc: number;
  }[]) {
    if (compactionRowCrc(c.name, c.slot) !== c.crc) continue;
    const rows = new VoteRows();
    rows.compacted = c.slot;
    groups.set(c.name, rows);
    const deleted = drop.run(c.name, c.slot).changes;
    if (deleted > 0)
      log.info('deleted compacted acceptor votes left from before the restart', {
        file,
        group: c.name,
        upTo: c.slot,
        votes: deleted,
      });
  }
  const rows = db.prepare('SELECT name, slot, length(value) AS bytes FROM vp_votes ORDER BY name, slot');
  for (const r of rows.iterate() as IterableIterator<{ name: string; slot: number; bytes: number }>) {
    let g = groups.get(r.name);
    if (g === undefined) {
      g = new VoteRows();
      groups.set(r.name, g);
    }
    g.wrote(r.slot, r.bytes);
  }
  return groups;
}
