import type { NodeId } from '@cohort/core';
import { AcceptorStateLostError, NotPrimaryError, StaleBallotError } from './errors.js';
import type { Ballot, Message, MessageType, Proposal, Slot, Vote } from './types.js';

/** The value a primary proposes for a slot where every value is safe and it has nothing to propose. */
export const NOOP: Uint8Array = new Uint8Array(0);

/** What a replica's acceptor keeps on disk: its promise, its votes, and the slot its votes were compacted through. */
export interface AcceptorState {
  maxBallot: Ballot;
  votes: Vote[];
  /**
   * Every slot up to here is chosen and applied by this replica's state
   * machine (durably), and its votes there were dropped. @default 0
   */
  compacted?: Slot;
}

/** Options of a {@link VPaxosEngine}. */
export interface EngineOptions {
  id: NodeId;
  /** The durable acceptor state the replica restarted with. @default nothing voted */
  state?: AcceptorState;
  /** The highest slot the host's state machine has applied already (it restarts from there). @default 0 */
  applied?: Slot;
  /** The most entries one p2a or catch-up answer carries. @default 64 */
  maxBatch?: number;
}

/** What the master told a replica when it made it the primary of a new ballot. */
export interface BallotAssignment {
  ballot: Ballot;
  /** The last activated ballot (0 when there was none: nothing can have been chosen). */
  prevBallot: Ballot;
  /** The acceptors of `prevBallot` (Phase 1 reads any one of them). */
  prevAcceptors: NodeId[];
  /** The acceptors of `ballot`, this replica included (Phase 2 writes to all of them). */
  acceptors: NodeId[];
}

/** A message to send. */
export interface Outbound {
  to: NodeId;
  msg: Message;
}

/**
 * The work one batch of inputs produced, in the order the host must do it:
 * first make `persist` durable, then send `messages` (a 1b or 2b reply leaves
 * only once the promise or vote it carries is on disk), then apply `committed`
 * in slot order and answer `reads` once applied reaches their index.
 */
export interface Ready {
  /**
   * Acceptor state to make durable before any message goes out. `compactTo`:
   * drop the votes up to this slot, in the same durable write (the state
   * machine holds them: the write's fsync also covers the apply before it).
   */
  persist: { maxBallot: Ballot | undefined; votes: Vote[]; compactTo: Slot | undefined };
  /**
   * Replicas that need this replica's state machine snapshot (they lack
   * chosen slots this replica compacted): stream it to each, tagged with
   * `ballot` (the receiver refuses one below its promise).
   */
  snapshots: { to: NodeId; ballot: Ballot }[];
  messages: Outbound[];
  /** Chosen values, contiguous from the last applied slot + 1, to apply in order. */
  committed: Proposal[];
  /** Reads confirmed by every acceptor: serve each once the state machine has applied `index`. */
  reads: { id: number; index: Slot }[];
  /** Heartbeat rounds started in this batch (the host records when it sent them, for leases). */
  rounds: number[];
  /** The highest round every acceptor answered, when it moved: the lease runs from that round's send time. */
  confirmedRound: number | undefined;
  /** This replica finished Phase 1 and Phase 2 for its ballot: tell the master (VP's "complete"). */
  complete: Ballot | undefined;
  /** This replica stopped being primary: fail every pending proposal and read with this error. */
  deposed: StaleBallotError | NotPrimaryError | undefined;
}

type Phase = 'phase1' | 'phase2' | 'complete' | 'active';

/** The volatile state of a replica while it leads a ballot (Raft's leader state). */
interface PrimaryState {
  ballot: Ballot;
  prevBallot: Ballot;
  prevAcceptors: NodeId[];
  acceptors: NodeId[];
  phase: Phase;
  /** Slots up to here must be held by every acceptor before `complete` (the re-proposed safe values). */
  endSlot: Slot;
  /** The next slot a new command takes. */
  nextSlot: Slot;
  /** Values this ballot proposed and not yet chosen everywhere, kept to resend. */
  proposals: Map<Slot, Uint8Array>;
  /** Proposals not yet sent. */
  unsent: Proposal[];
  /** Per acceptor: every slot up to it is voted in this ballot or chosen (Raft's matchIndex). */
  match: Map<NodeId, Slot>;
  /** Per acceptor: the highest heartbeat round it answered. */
  answered: Map<NodeId, number>;
  round: number;
  /** A round started since the last {@link VPaxosEngine.ready}: its p2a have not left yet. */
  openRound: number | undefined;
  confirmedRound: number;
  /** The commit last sent to the backups. */
  commitSent: Slot;
  /** Reads waiting for a round every acceptor answered. */
  reads: { id: number; round: number; index: Slot }[];
}

/** Counters for metrics. */
export interface EngineStats {
  /** Messages ignored because their ballot was below this replica's promise, by type. */
  staleIgnored: Partial<Record<MessageType, number>>;
  /** Messages ignored because they belong to no ballot this replica takes part in. */
  unknownIgnored: number;
}

/**
 * One replica of a Vertical Paxos II group: an acceptor always, and the
 * primary of a ballot when the configuration master makes it one. A pure
 * state machine like the Raft engine: no clock, no timers, no randomness, no
 * I/O. The host feeds it messages and commands, calls {@link tick} on a timer
 * and drains {@link ready} after each batch.
 *
 * For a reader who knows Raft: a ballot is a term, the acceptors are the
 * followers (and the primary itself), a slot is a log index, "chosen" is
 * "committed". The differences: the master, not an election, picks the primary
 * and the configuration of each ballot; the write quorum is *every* acceptor of
 * the configuration (so f+1 replicas tolerate f failures, the master replacing
 * the failed ones), and the read quorum of Phase 1 is any *one* acceptor of the
 * previous configuration.
 */
export class VPaxosEngine {
  readonly id: NodeId;
  private maxBallot: Ballot;
  /** The acceptor's votes by slot. */
  private readonly log = new Map<Slot, Vote>();
  /** The bytes of the values in {@link log}: what this acceptor holds in memory above its compaction point. */
  private logBytes = 0;
  /** Every slot up to here is chosen and held here (the contiguous chosen prefix). */
  private commit: Slot = 0;
  /** Slots up to here were handed to the host to apply. */
  private emitted: Slot;
  private primary: PrimaryState | undefined;
  /** The primary this replica last heard from, and its ballot. */
  private leader: { ballot: Ballot; id: NodeId } = { ballot: 0, id: '' };
  private readonly maxBatch: number;
  /** The slot a CatchUp request last asked from. */
  private catchUpAsked: Slot = 0;
  /** Every slot up to here is chosen and applied, and its vote dropped: a replica lacking them gets a snapshot. */
  private compacted: Slot;
  readonly stats: EngineStats = { staleIgnored: {}, unknownIgnored: 0 };
  private out: Ready = emptyReady();

  constructor(options: EngineOptions) {
    this.id = options.id;
    this.maxBallot = options.state?.maxBallot ?? 0;
    this.compacted = options.state?.compacted ?? 0;
    const applied = options.applied ?? 0;
    if (applied < this.compacted) {
      // The votes below the compaction point are gone: only the state machine held those slots.
      throw new RangeError(
        `replica ${options.id}: the state machine is at slot ${applied} but the acceptor compacted its votes through ${this.compacted}; its state was lost`,
      );
    }
    for (const v of options.state?.votes ?? []) if (v.slot > this.compacted) this.setVote({ ...v });
    this.commit = this.compacted;
    this.advanceCommit();
    if (applied > this.commit) {
      // A snapshot was installed and the compaction that follows it did not reach disk: every applied slot is chosen.
      this.dropUpTo(applied);
      this.out.persist.compactTo = applied;
    }
    this.emitted = Math.min(applied, this.commit);
    this.maxBatch = options.maxBatch ?? 64;
  }

  // ---- Queries ----

  /** The highest ballot this acceptor promised (never votes below it). */
  promised(): Ballot {
    return this.maxBallot;
  }

  /** The contiguous chosen prefix this replica holds. */
  committed(): Slot {
    return this.commit;
  }

  /** The slot this replica's votes are compacted through (0: none). */
  compactedThrough(): Slot {
    return this.compacted;
  }

  /** Votes this replica holds (above its compaction point). */
  heldVotes(): number {
    return this.log.size;
  }

  /** The bytes of the values of the votes this replica holds (above its compaction point), all kept in memory. */
  heldVoteBytes(): number {
    return this.logBytes;
  }

  /** This replica's vote at `slot`, if any. */
  vote(slot: Slot): Vote | undefined {
    return this.log.get(slot);
  }

  /** The ballot this replica leads and its phase, if it is a primary. */
  leading(): { ballot: Ballot; phase: Phase; acceptors: NodeId[] } | undefined {
    const p = this.primary;
    return p && { ballot: p.ballot, phase: p.phase, acceptors: [...p.acceptors] };
  }

  /** Whether this replica is the activated primary of its ballot (it serves requests). */
  isActive(): boolean {
    return this.primary?.phase === 'active';
  }

  /** The primary this replica knows of ('' when none) and its ballot. */
  knownPrimary(): { ballot: Ballot; id: NodeId } {
    if (this.primary) return { ballot: this.primary.ballot, id: this.id };
    return { ...this.leader };
  }

  /** Slots this primary proposed and has not found chosen yet (0 on a backup). */
  inFlight(): number {
    const p = this.primary;
    return p && p.nextSlot > 0 ? Math.max(0, p.nextSlot - 1 - this.commit) : 0;
  }

  /** Acceptors whose votes do not yet reach `slot` (those a write waits for). */
  lagging(slot: Slot): NodeId[] {
    const p = this.primary;
    if (!p) return [];
    return p.acceptors.filter((a) => (p.match.get(a) ?? 0) < slot);
  }

  /** Acceptors that did not answer heartbeat `round` (default: the latest round) yet. */
  silent(round?: number): NodeId[] {
    const p = this.primary;
    if (!p) return [];
    const r = round ?? p.round;
    return p.acceptors.filter((a) => (p.answered.get(a) ?? 0) < r);
  }

  hasReady(): boolean {
    const o = this.out;
    return (
      o.persist.maxBallot !== undefined ||
      o.persist.votes.length > 0 ||
      o.persist.compactTo !== undefined ||
      o.snapshots.length > 0 ||
      o.messages.length > 0 ||
      this.commit > this.emitted ||
      o.reads.length > 0 ||
      o.rounds.length > 0 ||
      o.confirmedRound !== undefined ||
      o.complete !== undefined ||
      o.deposed !== undefined ||
      (this.primary !== undefined &&
        (this.primary.unsent.length > 0 || (this.primary.phase === 'active' && this.commit > this.primary.commitSent)))
    );
  }

  /** Takes the work produced since the last call (see {@link Ready} for the order to do it in). */
  ready(): Ready {
    this.flushUnsent();
    const p = this.primary;
    if (p?.phase === 'active' && this.commit > p.commitSent) {
      // Tell the backups at once what is chosen (Raft waits for the next append; a backup here applies sooner).
      for (const a of p.acceptors) {
        if (a !== this.id) this.send(a, { type: 'p2a', ballot: p.ballot, entries: [], commit: this.commit, round: 0 });
      }
      p.commitSent = this.commit;
    }
    if (p) p.openRound = undefined;
    const o = this.out;
    for (let s = this.emitted + 1; s <= this.commit; s++) {
      const v = this.log.get(s) as Vote;
      o.committed.push({ slot: s, value: v.value });
    }
    this.emitted = this.commit;
    this.out = emptyReady();
    return o;
  }

  // ---- Commands from the master ----

  /**
   * The master made this replica the primary of `a.ballot` (VP's newBallot).
   * Phase 1 starts: a 1a to every acceptor of the previous configuration; the
   * first 1b tells which values are safe (VFindSafe). With no previous ballot
   * nothing can have been chosen and Phase 1 is skipped.
   */
  startBallot(a: BallotAssignment): void {
    // A ballot this replica already promised is one it led before (ballots have one primary): it must
    // not start it again (after a restart it would not know which values it proposed in it).
    if (a.ballot <= this.maxBallot || (this.primary !== undefined && a.ballot <= this.primary.ballot)) {
      throw new StaleBallotError(a.ballot, Math.max(this.maxBallot, this.primary?.ballot ?? 0));
    }
    if (!a.acceptors.includes(this.id))
      throw new RangeError(`primary ${this.id} is not an acceptor of ballot ${a.ballot}`);
    if (a.prevBallot !== 0 && a.prevAcceptors.length === 0) {
      // Skipping Phase 1 is safe only when no ballot was ever active.
      throw new RangeError(`ballot ${a.ballot}: previous ballot ${a.prevBallot} has no acceptors to read`);
    }
    if (a.prevBallot > this.maxBallot && a.prevAcceptors.length === 1 && a.prevAcceptors[0] === this.id) {
      // The lone acceptor of the previous ballot was its primary, which promised it durably first: a
      // store without that promise lost its acceptor state, and Phase 1 would read nothing of it.
      throw new AcceptorStateLostError(a.ballot, a.prevBallot, this.maxBallot);
    }
    if (this.primary) this.stepDown(new StaleBallotError(this.primary.ballot, a.ballot));
    // The primary promises its own ballot first, durably before anything of the ballot leaves.
    this.promise(a.ballot);
    this.primary = {
      ballot: a.ballot,
      prevBallot: a.prevBallot,
      prevAcceptors: [...a.prevAcceptors],
      acceptors: [...a.acceptors],
      phase: 'phase1',
      endSlot: 0,
      nextSlot: 0,
      proposals: new Map(),
      unsent: [],
      match: new Map(),
      answered: new Map(),
      round: 0,
      openRound: undefined,
      confirmedRound: 0,
      commitSent: 0,
      reads: [],
    };
    if (a.prevBallot === 0) {
      this.beginPhase2([]);
    } else {
      this.sendPhase1();
    }
  }

  /**
   * The master activated this replica's ballot: the re-proposed values, which
   * every acceptor holds, are chosen, and the primary serves requests. Before
   * this the ballot has no effect (strict activation).
   */
  activate(ballot: Ballot): void {
    const p = this.primary;
    if (!p || p.ballot !== ballot || p.phase !== 'complete') return;
    p.phase = 'active';
    this.leader = { ballot, id: this.id };
    this.advancePrimaryCommit();
  }

  /**
   * Proposes a command; returns its slot. Refused with {@link NotPrimaryError}
   * unless this replica is the activated primary. Proposals of one batch go
   * out in one p2a per acceptor.
   */
  propose(value: Uint8Array): Slot {
    const p = this.primary;
    if (!p || p.phase !== 'active') {
      throw new NotPrimaryError(
        this.leader.id === this.id ? undefined : this.leader.id || undefined,
        undefined,
        p ? `ballot ${p.ballot} is not activated yet` : undefined,
      );
    }
    const slot = p.nextSlot++;
    p.proposals.set(slot, value);
    p.unsent.push({ slot, value });
    return slot;
  }

  /**
   * A linearizable read without clocks: the primary starts a heartbeat round
   * and serves the read once every acceptor answered it while still promised
   * to this ballot (no newer ballot can have chosen anything in between),
   * from the state up to the commit of now. Comes back in {@link Ready.reads}.
   */
  read(id: number): void {
    const p = this.primary;
    if (!p || p.phase !== 'active')
      throw new NotPrimaryError(this.leader.id === this.id ? undefined : this.leader.id || undefined);
    // Reads of one batch share a round: its p2a leave after every one of them arrived, so its answers
    // confirm the ballot after each (Raft's ReadIndex batching); each read keeps its own index.
    p.reads.push({ id, round: p.openRound ?? this.startRound(p, false), index: this.commit });
  }

  /**
   * The host's heartbeat timer: a primary resends what an acceptor is missing
   * (Phase 1 until a 1b came, Phase 2 entries beyond its match) and starts a
   * heartbeat round (which renews a lease).
   */
  tick(): void {
    const p = this.primary;
    if (!p) return;
    if (p.phase === 'phase1') {
      this.sendPhase1();
      return;
    }
    this.startRound(p, true);
  }

  // ---- Compaction and snapshots ----

  /**
   * Drops this acceptor's votes up to `slot` (durably, with the next Ready's
   * write), once the host's state machine applied them. Slots above the
   * applied ones are never dropped, so the point is clamped to what was handed
   * to the host. Returns the compaction point.
   *
   * Why this is safe. A slot at or below the point is chosen (the replica
   * applied it, and only chosen values are applied), so no later ballot can
   * choose another value there and Phase 1 need not find its vote: a 1b says
   * how far it is compacted, and a new primary whose commit is below that
   * receives the snapshot first. Every slot above the point keeps its vote, so
   * a new primary's Phase 1 over this acceptor still finds every value that
   * may have been chosen there. CatchUp from a slot at or below the point is
   * answered with the snapshot, then the chosen slots after it.
   */
  compact(slot: Slot): Slot {
    const to = Math.min(slot, this.emitted, this.commit);
    if (to <= this.compacted) return this.compacted;
    this.dropUpTo(to);
    this.out.persist.compactTo = to;
    return to;
  }

  /**
   * The host's state machine installed a snapshot holding every slot up to
   * `slot` (all chosen: the sender had applied them): the slots are chosen
   * here, their votes dropped (durably, in the next Ready). A primary in Phase 1
   * asks its previous configuration again; a backup reports its new match.
   */
  installSnapshot(slot: Slot): void {
    if (slot <= this.commit) return;
    this.dropUpTo(slot);
    this.emitted = Math.max(this.emitted, slot);
    this.out.persist.compactTo = slot;
    const p = this.primary;
    if (p?.phase === 'phase1') {
      this.sendPhase1();
    } else if (!p && this.leader.id !== '' && this.leader.ballot === this.maxBallot) {
      this.send(this.leader.id, {
        type: 'p2b',
        ballot: this.leader.ballot,
        match: this.matchAt(this.leader.ballot),
        round: 0,
      });
    }
  }

  /** Forgets the votes up to `to` and moves the compaction point (and the commit, which covers it) there. */
  private dropUpTo(to: Slot): void {
    for (const [s, v] of this.log) {
      if (s > to) continue;
      this.log.delete(s);
      this.logBytes -= v.value.length;
    }
    this.compacted = to;
    if (this.commit < to) this.commit = to;
    this.advanceCommit();
  }

  // ---- Messages ----

  /** Handles a message from `from`. */
  step(from: NodeId, m: Message): void {
    switch (m.type) {
      case 'p1a':
        this.onP1a(from, m);
        return;
      case 'p2a':
        this.onP2a(from, m);
        return;
      case 'catchUpResp':
        this.onCatchUpResp(from, m);
        return;
      case 'p1b':
        this.onP1b(from, m);
        return;
      case 'p2b':
        this.onP2b(from, m);
        return;
      case 'reject':
        this.onReject(m);
        return;
      case 'catchUpReq':
        this.onCatchUpReq(from, m);
        return;
    }
  }

  private ignoreStale(t: MessageType): void {
    this.stats.staleIgnored[t] = (this.stats.staleIgnored[t] ?? 0) + 1;
  }

  /** Raises the promise (durably); a primary of a lower ballot steps down (Raft: a higher term makes a leader a follower). */
  private promise(ballot: Ballot): void {
    if (ballot <= this.maxBallot) return;
    this.maxBallot = ballot;
    this.out.persist.maxBallot = ballot;
    if (this.primary && this.primary.ballot < ballot) this.stepDown(new StaleBallotError(this.primary.ballot, ballot));
  }

  /**
   * Acceptor, Phase 1b: promise never to vote below `m.ballot` and report the
   * votes a new primary must respect: those cast at `prevBallot` or later (a
   * value voted at the previous active ballot may have been chosen there) and
   * the values known chosen. The reply leaves once the promise is durable.
   */
  private onP1a(from: NodeId, m: Extract<Message, { type: 'p1a' }>): void {
    if (m.ballot < this.maxBallot) {
      this.ignoreStale('p1a');
      this.send(from, { type: 'reject', ballot: m.ballot, maxBallot: this.maxBallot });
      return;
    }
    this.promise(m.ballot);
    const votes: Vote[] = [];
    for (const v of this.log.values()) {
      if (v.slot >= m.from && (v.chosen || v.ballot >= m.prevBallot)) votes.push({ ...v });
    }
    votes.sort((a, b) => a.slot - b.slot);
    this.send(from, { type: 'p1b', ballot: m.ballot, votes, compacted: this.compacted });
    // The new primary lacks chosen slots whose votes are gone here: it gets them as the state machine's snapshot.
    if (this.compacted >= m.from && from !== this.id) this.out.snapshots.push({ to: from, ballot: m.ballot });
  }

  /**
   * Acceptor, Phase 2b: vote for the primary's values unless promised to a
   * higher ballot (never vote below maxBallot), learn which slots are chosen,
   * and answer with how far this acceptor's votes reach. A chosen value is
   * never overwritten. A backup missing chosen values it cannot learn from the
   * primary's commit (its vote is from another ballot, or absent) asks for them (CatchUp).
   */
  private onP2a(from: NodeId, m: Extract<Message, { type: 'p2a' }>): void {
    if (m.ballot < this.maxBallot) {
      this.ignoreStale('p2a');
      this.send(from, { type: 'reject', ballot: m.ballot, maxBallot: this.maxBallot });
      return;
    }
    this.promise(m.ballot);
    if (from !== this.id) this.leader = { ballot: m.ballot, id: from };
    for (const e of m.entries) {
      if (e.slot <= this.compacted) continue; // chosen and applied here already
      const cur = this.log.get(e.slot);
      if (cur?.chosen) continue;
      if (cur && cur.ballot === m.ballot) continue; // a duplicate: one value per slot per ballot
      const v: Vote = { slot: e.slot, ballot: m.ballot, value: e.value, chosen: false };
      this.setVote(v);
      this.out.persist.votes.push(v);
    }
    // Slots up to the primary's commit are chosen; a vote cast in this very ballot holds the chosen value.
    for (let s = this.commit + 1; s <= m.commit; s++) {
      const v = this.log.get(s);
      if (!v || v.ballot !== m.ballot) break;
      this.markChosen(v);
    }
    this.advanceCommit();
    // Ask once per gap, and again on each heartbeat round while it lasts (the answer may be lost),
    // not on every p2a of a busy primary.
    if (this.commit < m.commit && (m.round > 0 || this.catchUpAsked !== this.commit + 1)) {
      this.catchUpAsked = this.commit + 1;
      this.send(from, { type: 'catchUpReq', ballot: m.ballot, from: this.commit + 1 });
    }
    this.send(from, { type: 'p2b', ballot: m.ballot, match: this.matchAt(m.ballot), round: m.round });
  }

  /** CatchUp, at the primary: send the chosen values from `m.from` on (outside the protocol proper). */
  private onCatchUpReq(from: NodeId, m: Extract<Message, { type: 'catchUpReq' }>): void {
    const p = this.primary;
    if (!p || m.ballot !== p.ballot) {
      if (m.ballot < this.maxBallot) this.ignoreStale('catchUpReq');
      else this.stats.unknownIgnored++;
      return;
    }
    if (m.from <= this.compacted) {
      // The votes it asks for are compacted: the state machine's snapshot carries them (CatchUp resumes after it).
      if (from !== this.id) this.out.snapshots.push({ to: from, ballot: p.ballot });
      return;
    }
    const votes: Vote[] = [];
    for (let s = m.from; s <= this.commit && votes.length < this.maxBatch; s++) {
      votes.push({ ...(this.log.get(s) as Vote) });
    }
    if (votes.length > 0) this.send(from, { type: 'catchUpResp', ballot: p.ballot, votes });
  }

  /** CatchUp, at the backup: store the chosen values durably, then report the new match. */
  private onCatchUpResp(from: NodeId, m: Extract<Message, { type: 'catchUpResp' }>): void {
    if (m.ballot < this.maxBallot) {
      this.ignoreStale('catchUpResp');
      return;
    }
    this.promise(m.ballot);
    for (const v of m.votes) {
      if (!v.chosen || v.slot <= this.compacted) continue;
      const cur = this.log.get(v.slot);
      if (cur?.chosen) continue;
      const c: Vote = { slot: v.slot, ballot: v.ballot, value: v.value, chosen: true };
      this.setVote(c);
      this.out.persist.votes.push(c);
    }
    this.advanceCommit();
    this.send(from, { type: 'p2b', ballot: m.ballot, match: this.matchAt(m.ballot), round: 0 });
  }

  /**
   * Primary, end of Phase 1 (VFindSafe): the first 1b from an acceptor of the
   * previous configuration decides. That configuration's write quorum was all
   * of its acceptors, so any one of them holds every value that can have been
   * chosen there: a slot where it voted at `prevBallot` or later has that value
   * as its only safe value; a slot where it voted nothing is free (all values
   * safe: the primary fills gaps with a no-op). Chosen values it reports are learned.
   */
  private onP1b(from: NodeId, m: Extract<Message, { type: 'p1b' }>): void {
    const p = this.primary;
    if (!p || m.ballot !== p.ballot) {
      if (m.ballot < this.maxBallot) this.ignoreStale('p1b');
      else this.stats.unknownIgnored++;
      return;
    }
    if (p.phase !== 'phase1' || !p.prevAcceptors.includes(from)) return;
    if (m.compacted > this.commit) {
      // Slots up to m.compacted are chosen but their votes are gone there: this primary cannot re-propose
      // them. It waits in Phase 1 for the snapshot the acceptor sends, then asks again (tick resends the 1a).
      return;
    }
    const safe: Vote[] = [];
    for (const v of m.votes) {
      if (v.slot <= this.commit) continue;
      if (v.chosen) {
        const cur = this.log.get(v.slot);
        if (cur?.chosen) continue;
        const c: Vote = { slot: v.slot, ballot: v.ballot, value: v.value, chosen: true };
        this.setVote(c);
        this.out.persist.votes.push(c);
      } else if (v.ballot >= p.prevBallot) {
        safe.push(v);
      }
    }
    this.advanceCommit();
    this.beginPhase2(safe);
  }

  /**
   * Primary, Phase 2 of the safe values: re-propose, in this ballot, every
   * slot from the commit to the highest one reported (the reported value, or a
   * no-op in a gap), to every acceptor of the new configuration. Once all of
   * them hold everything up to there the primary reports `complete`.
   */
  private beginPhase2(safe: Vote[]): void {
    const p = this.primary as PrimaryState;
    const bySlot = new Map<Slot, Vote>();
    let end = this.commit;
    for (const v of safe) {
      if (v.slot <= this.commit) continue;
      const cur = bySlot.get(v.slot);
      if (!cur || v.ballot > cur.ballot) bySlot.set(v.slot, v);
      if (v.slot > end) end = v.slot;
    }
    // Slots chosen below the commit need no proposal; the backups lacking them catch up.
    for (let s = this.commit + 1; s <= end; s++) {
      const local = this.log.get(s);
      const value = local?.chosen ? local.value : (bySlot.get(s)?.value ?? NOOP);
      p.proposals.set(s, value);
      p.unsent.push({ slot: s, value });
    }
    p.endSlot = end;
    p.nextSlot = end + 1;
    p.phase = 'phase2';
    // A heartbeat round carries the commit to every acceptor now, so one holding
    // nothing of this ballot answers (and catches up) even with nothing re-proposed.
    this.startRound(p, false);
  }

  /** Primary: an acceptor's Phase 2b (or heartbeat answer). */
  private onP2b(from: NodeId, m: Extract<Message, { type: 'p2b' }>): void {
    const p = this.primary;
    if (!p || m.ballot !== p.ballot) {
      if (m.ballot < this.maxBallot) this.ignoreStale('p2b');
      else this.stats.unknownIgnored++;
      return;
    }
    if (!p.acceptors.includes(from)) {
      this.stats.unknownIgnored++;
      return;
    }
    // An acceptor counts once it answered this ballot at all (so it promised it), even with nothing to match.
    p.match.set(from, Math.max(p.match.get(from) ?? 0, m.match));
    if (m.round > (p.answered.get(from) ?? 0)) p.answered.set(from, m.round);
    if (p.phase === 'phase2' && p.acceptors.every((a) => (p.match.get(a) ?? -1) >= p.endSlot)) {
      // VP's "complete": this ballot's configuration holds every value that may have been chosen.
      p.phase = 'complete';
      this.out.complete = p.ballot;
    }
    if (p.phase === 'active') this.advancePrimaryCommit();
    this.confirmRounds(p);
  }

  /** An acceptor refused this primary's ballot: a newer ballot exists, step down. */
  private onReject(m: Extract<Message, { type: 'reject' }>): void {
    const p = this.primary;
    if (!p || m.ballot !== p.ballot || m.maxBallot <= p.ballot) {
      this.stats.unknownIgnored++;
      return;
    }
    this.stepDown(new StaleBallotError(p.ballot, m.maxBallot));
  }

  // ---- Primary helpers ----

  private sendPhase1(): void {
    const p = this.primary as PrimaryState;
    for (const a of p.prevAcceptors) {
      this.send(a, { type: 'p1a', ballot: p.ballot, prevBallot: p.prevBallot, from: this.commit + 1 });
    }
  }

  /** A value is chosen once every acceptor of an *active* ballot voted for it (write quorum = all). */
  private advancePrimaryCommit(): void {
    const p = this.primary as PrimaryState;
    let min = Number.POSITIVE_INFINITY;
    for (const a of p.acceptors) min = Math.min(min, p.match.get(a) ?? 0);
    if (min <= this.commit) return;
    for (let s = this.commit + 1; s <= min; s++) {
      const v = this.log.get(s);
      // Every acceptor, this one included, holds slot s voted in this ballot or chosen.
      if (!v) break;
      if (!v.chosen) this.markChosen(v);
      p.proposals.delete(s);
    }
    this.advanceCommit();
  }

  /** Starts a heartbeat round; with `resend`, each p2a also carries what its acceptor lacks (lost or reordered p2a). */
  private startRound(p: PrimaryState, resend: boolean): number {
    const round = ++p.round;
    p.openRound = round;
    this.out.rounds.push(round);
    this.flushUnsent();
    for (const a of p.acceptors) {
      const match = p.match.get(a) ?? 0;
      const entries: Proposal[] = [];
      for (let s = match + 1; resend && s < p.nextSlot && entries.length < this.maxBatch; s++) {
        const value = p.proposals.get(s);
        if (value !== undefined) entries.push({ slot: s, value });
      }
      this.send(a, { type: 'p2a', ballot: p.ballot, entries, commit: this.commit, round });
    }
    p.commitSent = this.commit;
    return round;
  }

  private flushUnsent(): void {
    const p = this.primary;
    if (!p || p.unsent.length === 0) return;
    const entries = p.unsent;
    p.unsent = [];
    for (let i = 0; i < entries.length; i += this.maxBatch) {
      const batch = entries.slice(i, i + this.maxBatch);
      for (const a of p.acceptors) {
        this.send(a, { type: 'p2a', ballot: p.ballot, entries: batch, commit: this.commit, round: 0 });
      }
    }
    p.commitSent = this.commit;
  }

  private confirmRounds(p: PrimaryState): void {
    let min = Number.POSITIVE_INFINITY;
    for (const a of p.acceptors) min = Math.min(min, p.answered.get(a) ?? 0);
    if (min <= p.confirmedRound) return;
    p.confirmedRound = min;
    if (p.phase === 'active') this.out.confirmedRound = min;
    while (p.reads.length > 0 && (p.reads[0] as { round: number }).round <= min) {
      const r = p.reads.shift() as { id: number; index: Slot };
      this.out.reads.push({ id: r.id, index: r.index });
    }
  }

  private stepDown(err: StaleBallotError): void {
    this.primary = undefined;
    this.out.deposed = err;
    this.out.reads = [];
  }

  // ---- Acceptor helpers ----

  private setVote(v: Vote): void {
    this.logBytes += v.value.length - (this.log.get(v.slot)?.value.length ?? 0);
    this.log.set(v.slot, v);
  }

  private markChosen(v: Vote): void {
    v.chosen = true;
    this.out.persist.votes.push(v);
  }

  private advanceCommit(): void {
    while (this.log.get(this.commit + 1)?.chosen) this.commit++;
  }

  /** How far this acceptor holds, for every slot, a vote in `ballot` or a chosen value. */
  private matchAt(ballot: Ballot): Slot {
    let s = this.commit;
    for (;;) {
      const v = this.log.get(s + 1);
      if (!v || !(v.chosen || v.ballot === ballot)) return s;
      s++;
    }
  }

  private send(to: NodeId, msg: Message): void {
    this.out.messages.push({ to, msg });
  }
}

function emptyReady(): Ready {
  return {
    persist: { maxBallot: undefined, votes: [], compactTo: undefined },
    snapshots: [],
    messages: [],
    committed: [],
    reads: [],
    rounds: [],
    confirmedRound: undefined,
    complete: undefined,
    deposed: undefined,
  };
}
