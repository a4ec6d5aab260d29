import type { NodeId } from '@cohort/core';
import type { MemberUpdate } from './types.js';

/** Asks the receiver to answer with an ack carrying `seq`. `target` is the id the sender means to reach. */
export interface PingMessage {
  readonly type: 'ping';
  readonly seq: number;
  readonly target: NodeId;
  readonly gossip: readonly MemberUpdate[];
}

/** Answers a ping (or relays the answer of an indirect one). */
export interface AckMessage {
  readonly type: 'ack';
  readonly seq: number;
  readonly gossip: readonly MemberUpdate[];
}

/** Lifeguard: the relay of an indirect probe got no ack in time (so the requester knows the relay is alive). */
export interface NackMessage {
  readonly type: 'nack';
  readonly seq: number;
  readonly gossip: readonly MemberUpdate[];
}

/** Asks the receiver to probe `target` on the sender's behalf (SWIM indirect probe). */
export interface PingReqMessage {
  readonly type: 'ping-req';
  readonly seq: number;
  readonly target: NodeId;
  readonly targetAddress: string;
  readonly gossip: readonly MemberUpdate[];
}

/** Carries updates only (dissemination between probes and during leave). */
export interface GossipMessage {
  readonly type: 'gossip';
  readonly gossip: readonly MemberUpdate[];
}

/** Anti-entropy: the sender's full member list; the receiver merges it and, unless `reply`, answers with its own. */
export interface PushPullMessage {
  readonly type: 'push-pull';
  readonly reply: boolean;
  readonly join: boolean;
  readonly members: readonly MemberUpdate[];
}

/** Every SWIM message. */
export type SwimMessage = PingMessage | AckMessage | NackMessage | PingReqMessage | GossipMessage | PushPullMessage;
