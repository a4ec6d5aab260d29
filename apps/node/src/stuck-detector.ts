/**
 * Tells which groups are stuck: entries in the log past the commit index
 * (proposals waiting to commit) while the commit index has not moved for
 * `afterMs`. Fed samples (at least every few hundred ms by the node, and at
 * each `GET /v1/partitions`); a group counts as pending from the first
 * sample that saw it pending, so a quiet spell between samples never makes a
 * fresh proposal look stuck.
 */
export class StuckDetector {
  private readonly groups = new Map<string, { commit: number; since: number; pending: boolean }>();

  constructor(private readonly afterMs: number) {}

  /** Records a sample of `group`; answers whether it is stuck now. */
  observe(group: string, commit: number, lastIndex: number, now: number): boolean {
    const pending = lastIndex > commit;
    const prev = this.groups.get(group);
    if (prev === undefined || !pending || !prev.pending || prev.commit !== commit) {
      this.groups.set(group, { commit, since: now, pending });
      return false;
    }
    return now - prev.since >= this.afterMs;
  }

  /** Forgets `group` (no longer hosted here). */
  forget(group: string): void {
    this.groups.delete(group);
  }
}
