import { StorageError } from '@cohort/core/errors';
import { crc32c, crc32cNumber, crc32cString } from './crc32c.js';

/** One stored Vertical Paxos vote: the value an acceptor accepted at `slot`, in `ballot`; `chosen` once known chosen. */
export interface StoredVote {
  slot: number;
  ballot: number;
  value: Uint8Array;
  chosen: boolean;
}

/** A Vertical Paxos acceptor's durable state in one group: its promise, its votes and its compaction point. */
export interface StoredAcceptorState {
  maxBallot: number;
  votes: StoredVote[];
  /** Every slot up to here is chosen and applied; its votes were deleted (0: none). */
  compacted: number;
}

/**
 * Where a node keeps its Vertical Paxos acceptor state (the structural
 * `AcceptorStore` of @cohort/vpaxos' host). `saveAcceptor` resolves once the
 * promise and votes are durable (fsynced), so a 1b or 2b reply may leave; a
 * promise is never lowered, a vote replaces the slot's previous one.
 */
export interface AcceptorStateStore {
  loadAcceptor(group: string): StoredAcceptorState;
  /**
   * With `compactTo`, the same durable commit deletes the votes up to that
   * slot (votes given at or below it are not stored) and raises the
   * compaction point (never lowered). Its fsync also makes durable every
   * state machine apply committed before it (WAL order).
   */
  saveAcceptor(group: string, maxBallot: number | undefined, votes: StoredVote[], compactTo?: number): Promise<void>;
}

/** CRC of a `vp_acceptors` row. */
export function acceptorRowCrc(group: string, maxBallot: number): number {
  return crc32cNumber(maxBallot, crc32cString(group, 0));
}

/** CRC of a `vp_compaction` row. */
export function compactionRowCrc(group: string, slot: number): number {
  return crc32cNumber(slot, crc32cString(group, 1));
}

/** CRC of a `vp_votes` row. */
export function voteRowCrc(group: string, v: StoredVote): number {
  let c = crc32cString(group, 0);
  c = crc32cNumber(v.slot, c);
  c = crc32cNumber(v.ballot, c);
  c = crc32cNumber(v.chosen ? 1 : 0, c);
  return crc32c(v.value, c);
}

/** Checks that a save's arguments make sense before anything is written. */
export function checkAcceptorWrite(
  file: string,
  group: string,
  maxBallot: number | undefined,
  votes: StoredVote[],
  compactTo?: number,
): void {
  const bad = (what: string): never => {
    throw new StorageError(`${file}: group ${group}: refusing to store ${what}`);
  };
  if (compactTo !== undefined && (!Number.isSafeInteger(compactTo) || compactTo < 0))
    bad(`a compaction point ${compactTo}`);
  if (maxBallot !== undefined && (!Number.isSafeInteger(maxBallot) || maxBallot < 0)) bad(`max ballot ${maxBallot}`);
  for (const v of votes) {
    if (!Number.isSafeInteger(v.slot) || v.slot < 1) bad(`a vote at slot ${v.slot}`);
    if (!Number.isSafeInteger(v.ballot) || v.ballot < 0) bad(`a vote at slot ${v.slot} with ballot ${v.ballot}`);
  }
}
