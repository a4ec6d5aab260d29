import type { NodeId } from '@cohort/core';

/**
 * A ballot number: Vertical Paxos' epoch, as a Raft term. The configuration
 * master hands them out in increasing order; 0 means "none yet".
 */
export type Ballot = number;

/** A position in the replicated sequence of commands (Raft's log index). Slots start at 1. */
export type Slot = number;

/**
 * The acceptors of one ballot and the primary that leads it (Raft's
 * membership plus its leader). The write quorum is every acceptor; the read
 * quorum is any one of them.
 */
export interface Configuration {
  ballot: Ballot;
  primary: NodeId;
  /** Every replica that votes in this ballot, the primary included. */
  acceptors: NodeId[];
}

/**
 * An acceptor's vote for one slot: the value it accepted and in which ballot
 * (Raft's log entry with its term). `chosen` marks a value this replica knows
 * was chosen (Raft's "committed"): it can never change.
 */
export interface Vote {
  slot: Slot;
  ballot: Ballot;
  value: Uint8Array;
  chosen: boolean;
}

/** A value the primary proposes for a slot in its ballot. */
export interface Proposal {
  slot: Slot;
  value: Uint8Array;
}

/**
 * Messages between replicas of one group. Every message carries the sender's
 * ballot; a receiver ignores (and counts) one below its own `maxBallot`.
 */
export type Message =
  /**
   * Phase 1a (Raft's RequestVote, but sent to the *previous* configuration):
   * the primary of `ballot` asks an acceptor of `prevBallot`'s configuration to
   * promise never to vote below `ballot` and to report its votes from slot `from` on.
   */
  | { type: 'p1a'; ballot: Ballot; prevBallot: Ballot; from: Slot }
  /**
   * Phase 1b: the promise, with the acceptor's votes at `prevBallot` or later and the values it knows chosen,
   * above its compaction point `compacted` (every slot up to it is chosen and applied there; its votes are gone).
   */
  | { type: 'p1b'; ballot: Ballot; votes: Vote[]; compacted: Slot }
  /**
   * Phase 2a (Raft's AppendEntries): vote for these values in `ballot`; slots up
   * to `commit` are chosen. With no entries it is a heartbeat; `round` numbers
   * heartbeats so reads and leases can tell which one every acceptor answered.
   */
  | { type: 'p2a'; ballot: Ballot; entries: Proposal[]; commit: Slot; round: number }
  /**
   * Phase 2b: the acceptor holds, for every slot up to `match`, a vote in
   * `ballot` or a value it knows chosen (Raft's matchIndex); it answered heartbeat `round`.
   */
  | { type: 'p2b'; ballot: Ballot; match: Slot; round: number }
  /** A message at `ballot` was refused: the acceptor promised `maxBallot` (Raft's reply with a higher term). */
  | { type: 'reject'; ballot: Ballot; maxBallot: Ballot }
  /** CatchUp: a lagging backup asks the primary for the chosen values from slot `from` on. */
  | { type: 'catchUpReq'; ballot: Ballot; from: Slot }
  /** CatchUp answer: chosen values, in slot order. */
  | { type: 'catchUpResp'; ballot: Ballot; votes: Vote[] };

export type MessageType = Message['type'];
