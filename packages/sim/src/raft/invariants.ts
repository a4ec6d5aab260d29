import type { Entry, HardState, LogIndex, NodeId, Term } from '@cohort/core';
import type { Ready } from '@cohort/raft';
import { InvariantViolationError, type RunPosition } from '../errors.js';
import { hashBytes } from '../trace.js';

/** One node's log as the checker sees it: prefix hashes from `base` on. */
interface LogView {
  /** Index of `chains[0]` (the snapshot's index, or 0). */
  base: LogIndex;
  /** `chains[i]` hashes every entry up to `base + i`. */
  chains: number[];
  lastApplied: LogIndex;
  /** Commit index seen in this incarnation. */
  commit: LogIndex;
  /** Commit index known durable (survives crashes). */
  durableCommit: LogIndex;
}

// Terms stay far below 2^20 in a run, so (index, term) packs into one safe integer.
const TERM_BITS = 0x100000;

/**
 * The Raft safety properties (§5.2–§5.4, Figure 3), checked as the hosts
 * report what their engines did: Election Safety, Log Matching, Leader
 * Completeness, State Machine Safety, plus commit-index monotonicity and one
 * vote per term across restarts. A broken property throws
 * {@link InvariantViolationError} naming the seed and step.
 */
export class RaftInvariants {
  private readonly leaders = new Map<Term, NodeId>();
  /** Each node's durable vote per term (`id/term`): what survives a crash and what any voteResp rests on. */
  private readonly votes = new Map<string, NodeId>();
  /** Votes each node's engine cast in its current incarnation, durable or not yet (`id/term`). */
  private readonly castVotes = new Map<NodeId, Map<number, NodeId>>();
  /** Prefix hash of every (index, term) any node ever held. */
  private readonly prefixes = new Map<number, number>();
  /** Prefix hash at each index some node reported committed. */
  private readonly committed = new Map<LogIndex, number>();
  private maxCommit: LogIndex = 0;
  /** Hash of the entry applied at each index. */
  private readonly applied = new Map<LogIndex, number>();
  private readonly logs = new Map<NodeId, LogView>();
  /** Whether each node's engine last said it leads, and its term: {@link onReady} reports a step up once. */
  private readonly roles = new Map<NodeId, { leader: boolean; term: Term }>();
  /** Checks performed, for reports. */
  checks = 0;
  /**
   * The first violation found. Kept because a check can fail inside a host's
   * promise chain, where the host would take the throw for its own failure:
   * the run loop looks here after every event.
   */
  violation: InvariantViolationError | undefined;

  constructor(
    private readonly where: () => RunPosition,
    /** The group checked, named in violations when the run has several. */
    private readonly group?: string,
  ) {}

  private fail(property: string, detail: string): never {
    const err = new InvariantViolationError(
      property,
      this.group === undefined ? detail : `group ${this.group}: ${detail}`,
      this.where(),
    );
    this.violation ??= err;
    throw err;
  }

  private view(id: NodeId): LogView {
    let v = this.logs.get(id);
    if (!v) {
      v = { base: 0, chains: [0], lastApplied: 0, commit: 0, durableCommit: 0 };
      this.logs.set(id, v);
    }
    return v;
  }

  private lastIndex(v: LogView): LogIndex {
    return v.base + v.chains.length - 1;
  }

  /**
   * Checks one Ready of `id`'s engine as a whole, for a group observed at its engine seam only (the
   * simulated meta group): the snapshot and entries it hands to storage, its hard state, and its
   * step up to leader.
   */
  onReady(id: NodeId, rd: Ready): void {
    if (rd.snapshot) this.onSnapshot(id, rd.snapshot.meta.index, rd.snapshot.meta.term);
    if (rd.entries.length > 0) this.onAppend(id, rd.entries);
    let st = this.roles.get(id);
    if (st === undefined) {
      st = { leader: false, term: 0 };
      this.roles.set(id, st);
    }
    if (rd.hardState) {
      st.term = rd.hardState.term;
      this.onHardState(id, rd.hardState);
    }
    if (rd.softState) {
      const was = st.leader;
      st.leader = rd.softState.role === 'leader';
      if (st.leader && !was) this.onLeader(id, st.term);
    }
  }

  /** §5.2 Election Safety: at most one leader per term. */
  onLeader(id: NodeId, term: Term): void {
    this.checks++;
    const prev = this.leaders.get(term);
    if (prev !== undefined && prev !== id) this.fail('election safety', `${prev} and ${id} both lead term ${term}`);
    this.leaders.set(term, id);
    // §5.4 Leader Completeness: a new leader holds every committed entry.
    const v = this.view(id);
    const c = this.maxCommit;
    if (c > this.lastIndex(v)) {
      this.fail('leader completeness', `${id} leads term ${term} with last index ${this.lastIndex(v)} < commit ${c}`);
    }
    if (c >= v.base && c > 0) {
      const want = this.committed.get(c);
      if (want !== undefined && v.chains[c - v.base] !== want) {
        this.fail('leader completeness', `${id} leads term ${term} without the committed entries up to ${c}`);
      }
    }
  }

  /** A node emitted a hard state: one vote per term (across restarts), commit never goes back. */
  onHardState(id: NodeId, hs: HardState): void {
    this.checks++;
    if (hs.vote !== '') {
      // Against its durable votes (across restarts) and those of this incarnation. A vote lost in a
      // crash before it was durable was never sent (the host answers once the vote is durable): the
      // restarted node may cast another in that term.
      const prev = this.votes.get(`${id}/${hs.term}`);
      if (prev !== undefined && prev !== hs.vote) {
        this.fail('one vote per term', `${id} voted for ${prev} (durably) and then ${hs.vote} in term ${hs.term}`);
      }
      let cast = this.castVotes.get(id);
      if (cast === undefined) {
        cast = new Map();
        this.castVotes.set(id, cast);
      }
      const before = cast.get(hs.term);
      if (before !== undefined && before !== hs.vote) {
        this.fail('one vote per term', `${id} voted for ${before} and then ${hs.vote} in term ${hs.term}`);
      }
      cast.set(hs.term, hs.vote);
    }
    const v = this.view(id);
    if (hs.commit < v.commit) this.fail('commit monotonic', `${id} commit went from ${v.commit} back to ${hs.commit}`);
    v.commit = hs.commit;
    if (hs.commit > v.base && hs.commit <= this.lastIndex(v)) {
      const chain = v.chains[hs.commit - v.base] as number;
      const want = this.committed.get(hs.commit);
      if (want === undefined) this.committed.set(hs.commit, chain);
      else if (want !== chain) this.fail('log matching', `${id} committed a different log up to ${hs.commit}`);
    }
    if (hs.commit > this.maxCommit) this.maxCommit = hs.commit;
  }

  /** The node's hard state reached disk. */
  onDurable(id: NodeId, hs: HardState): void {
    if (hs.vote !== '') {
      const k = `${id}/${hs.term}`;
      const prev = this.votes.get(k);
      if (prev !== undefined && prev !== hs.vote) {
        this.fail('one vote per term', `${id} durably voted for ${prev} and then ${hs.vote} in term ${hs.term}`);
      }
      this.votes.set(k, hs.vote);
    }
    const v = this.view(id);
    if (hs.commit < v.durableCommit) {
      this.fail('commit monotonic', `${id} durable commit went from ${v.durableCommit} back to ${hs.commit}`);
    }
    v.durableCommit = hs.commit;
  }

  /**
   * The node restarted from disk with `hs`, its snapshot at `snapIndex` and
   * its log ending at `lastIndex` (entries it appended but never made durable are gone).
   */
  onRestart(id: NodeId, hs: HardState, snapIndex: LogIndex, lastIndex?: LogIndex): void {
    this.castVotes.delete(id);
    this.roles.delete(id);
    if (hs.vote !== '') this.votes.set(`${id}/${hs.term}`, hs.vote);
    const v = this.view(id);
    if (hs.commit < v.durableCommit) {
      this.fail('durability', `${id} restarted with commit ${hs.commit} below its durable ${v.durableCommit}`);
    }
    if (lastIndex !== undefined && lastIndex >= v.base && lastIndex < this.lastIndex(v)) {
      v.chains.length = lastIndex - v.base + 1;
    }
    v.commit = hs.commit;
    v.lastApplied = snapIndex;
    this.onHardState(id, hs);
  }

  /** §5.3 Log Matching: entries with the same index and term have identical prefixes. */
  onAppend(id: NodeId, entries: Entry[]): void {
    const first = entries[0];
    if (!first) return;
    this.checks++;
    const v = this.view(id);
    let start = 0;
    while (start < entries.length && (entries[start] as Entry).index <= v.base) start++;
    const e0 = entries[start];
    if (!e0) return;
    const keep = e0.index - v.base;
    if (keep > v.chains.length)
      this.fail('log matching', `${id} appended ${e0.index} after a gap (last ${this.lastIndex(v)})`);
    if (e0.index <= v.lastApplied) {
      this.fail('state machine safety', `${id} overwrote applied entry ${e0.index} (applied ${v.lastApplied})`);
    }
    v.chains.length = keep;
    let prev = v.chains[keep - 1] as number;
    for (let i = start; i < entries.length; i++) {
      const e = entries[i] as Entry;
      const chain = hashBytes(e.data, prev & 0xffffffff, e.term, e.type === 'normal' ? 0 : 1);
      const k = e.index * TERM_BITS + e.term;
      const seen = this.prefixes.get(k);
      if (seen === undefined) this.prefixes.set(k, chain);
      else if (seen !== chain)
        this.fail('log matching', `${id} holds a different log up to ${e.index} (term ${e.term})`);
      v.chains.push(chain);
      prev = chain;
    }
  }

  /** The node installed a snapshot covering up to (`index`, `term`). */
  onSnapshot(id: NodeId, index: LogIndex, term: Term): void {
    this.checks++;
    const chain = this.prefixes.get(index * TERM_BITS + term);
    if (chain === undefined)
      this.fail('log matching', `${id} installed a snapshot at ${index}/${term} no log ever held`);
    const v = this.view(id);
    v.base = index;
    v.chains = [chain];
    v.lastApplied = index;
  }

  /**
   * The node's state machine replaced its state with a snapshot at `index`
   * streamed from another replica (a follower catching up, or a replica
   * repairing corrupt state): it applies from `index + 1` on.
   */
  onStateRestored(id: NodeId, index: LogIndex): void {
    this.checks++;
    this.view(id).lastApplied = index;
  }

  /** The node dropped log entries up to `index` into its own snapshot. */
  onCompact(id: NodeId, index: LogIndex): void {
    const v = this.view(id);
    if (index <= v.base) return;
    v.chains = v.chains.slice(index - v.base);
    v.base = index;
  }

  /** §5.4.3 State Machine Safety: no two nodes apply different entries at one index, in order. */
  onApply(id: NodeId, e: Entry): void {
    this.checks++;
    const v = this.view(id);
    if (e.index !== v.lastApplied + 1) this.fail('apply order', `${id} applied ${e.index} after ${v.lastApplied}`);
    if (e.index > v.commit) this.fail('state machine safety', `${id} applied ${e.index} beyond its commit ${v.commit}`);
    v.lastApplied = e.index;
    const h = hashBytes(e.data, e.term, e.type === 'normal' ? 0 : 1);
    const prev = this.applied.get(e.index);
    if (prev === undefined) this.applied.set(e.index, h);
    else if (prev !== h) this.fail('state machine safety', `${id} applied a different entry at ${e.index}`);
  }
}
