import type { Message, NodeId } from '@cohort/core';
import type { KvInput } from '../lin/history.js';

/** How a client wants a `get` served. */
export type ReadMode = 'log' | 'readIndex';

/** A client request to a node. */
export interface ClientRequest {
  client: number;
  seq: number;
  input: KvInput;
  read: ReadMode;
}

/** A node's answer: the output, or "not the leader" with a hint. */
export type ClientResponse =
  | { client: number; seq: number; ok: true; output: string }
  | { client: number; seq: number; ok: false; leaderHint: NodeId };

/** Everything the simulated network carries in a Raft run. */
export type SimMessage =
  | { kind: 'raft'; m: Message }
  | { kind: 'req'; req: ClientRequest }
  | { kind: 'resp'; resp: ClientResponse };

/**
 * Copies what a receiver could mutate. Only a forwarded proposal is changed
 * on receipt (the leader stamps its entries with term and index); every other
 * message is read-only to its receiver, so it is shared, as within one process.
 */
export function cloneSimMessage(s: SimMessage): SimMessage {
  if (s.kind !== 'raft' || s.m.type !== 'prop') return s;
  return { kind: 'raft', m: { ...s.m, entries: s.m.entries.map((e) => ({ ...e })) } };
}
