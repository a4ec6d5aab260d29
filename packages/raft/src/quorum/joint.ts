import type { LogIndex, NodeId } from '@cohort/core';
import { type VoteResult, majorityCommitted, majorityVoteResult } from './majority.js';

/**
 * The voters of a possibly joint configuration: `incoming` always, `outgoing`
 * non-empty only during joint consensus (§6: decisions need a majority of both).
 */
export interface JointConfig {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
}

/** Committed index under joint consensus: the smaller of both majorities. */
export function jointCommitted(cfg: JointConfig, acked: (id: NodeId) => LogIndex | undefined): LogIndex {
  return Math.min(majorityCommitted(cfg.incoming, acked), majorityCommitted(cfg.outgoing, acked));
}

/** Election outcome under joint consensus: won only if both halves are won, lost if either is lost. */
export function jointVoteResult(cfg: JointConfig, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const a = majorityVoteResult(cfg.incoming, votes);
  const b = majorityVoteResult(cfg.outgoing, votes);
  if (a === b) return a;
  if (a === 'lost' || b === 'lost') return 'lost';
  return 'pending';
}

/** Every voter of either half. */
export function jointIds(cfg: JointConfig): Set<NodeId> {
  return new Set([...cfg.incoming, ...cfg.outgoing]);
}
