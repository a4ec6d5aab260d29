import type { NodeId } from '@cohort/core';

/** A member's liveness as this node believes it (SWIM states plus a graceful `left`). */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** Small key/value metadata a member publishes about itself (role, zone, clientAddress, ...). */
export type Tags = Readonly<Record<string, string>>;

/**
 * One fact about one member, as gossiped and as exchanged in push/pull.
 * `by` names the accuser of a `suspect` update, so independent confirmations can be counted.
 */
export interface MemberUpdate {
  readonly id: NodeId;
  readonly address: string;
  readonly incarnation: number;
  readonly state: MemberState;
  readonly tags: Tags;
  readonly by?: NodeId;
}

/** A member as the local view holds it. */
export interface Member {
  readonly id: NodeId;
  readonly address: string;
  readonly state: MemberState;
  readonly incarnation: number;
  readonly tags: Tags;
}
