import type { LogIndex, NodeId, Term } from './ids.js';

/**
 * The data types Raft engines, stores and the wire codec share. Plain objects,
 * so the engine stays free of any codec; `codec.ts` maps them to protobuf.
 */

/** `normal` carries application data; `confChange` carries an encoded {@link ConfChange}. */
export type EntryType = 'normal' | 'confChange';

/** One log entry. An empty `data` on a `normal` entry is the leader's no-op. */
export interface Entry {
  term: Term;
  index: LogIndex;
  type: EntryType;
  data: Uint8Array;
}

/** What a node must persist before it answers any message that depends on it. */
export interface HardState {
  term: Term;
  /** The candidate voted for in `term`; '' for none. */
  vote: NodeId;
  commit: LogIndex;
}

/** The membership of a group; `votersOutgoing` non-empty means joint consensus. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  /** The old voter set while in a joint configuration; empty otherwise. */
  votersOutgoing: NodeId[];
  /** Voters of the old config to become learners when the joint config is left. */
  learnersNext: NodeId[];
  /** Leave the joint configuration automatically once it commits. */
  autoLeave: boolean;
}

/** Identifies a snapshot: the last entry it covers and the membership at that point. */
export interface SnapshotMeta {
  index: LogIndex;
  term: Term;
  confState: ConfState;
}

/** A snapshot of the application state machine, as the application produced it. */
export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

export type ConfChangeType = 'addVoter' | 'addLearner' | 'removeNode';

export interface ConfChangeSingle {
  type: ConfChangeType;
  nodeId: NodeId;
}

/**
 * A membership change. One single change may be applied directly; several at
 * once (or `transition: 'explicit' | 'joint'`) go through joint consensus.
 * An empty `changes` list leaves a joint configuration.
 */
export interface ConfChange {
  transition: 'auto' | 'joint' | 'explicit';
  changes: ConfChangeSingle[];
  context: Uint8Array;
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export function emptyHardState(): HardState {
  return { term: 0, vote: '', commit: 0 };
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === '' && hs.commit === 0;
}

/** Raft message kinds (etcd/raft's MsgApp, MsgVote, ... in camelCase). */
export type MessageType =
  | 'app' // MsgApp: append entries (leader -> follower)
  | 'appResp'
  | 'vote' // RequestVote
  | 'voteResp'
  | 'preVote'
  | 'preVoteResp'
  | 'snap' // InstallSnapshot chunk
  | 'snapResp'
  | 'heartbeat'
  | 'heartbeatResp'
  | 'timeoutNow' // leadership transfer: campaign at once
  | 'transferLeader' // forwarded to the leader
  | 'readIndex' // forwarded to the leader
  | 'readIndexResp'
  | 'prop'; // a proposal forwarded by a follower to the leader

/** A message between engines. Unused fields are 0 / empty. */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: Term;
  /** Term of the entry at `index` (app: previous entry; vote: candidate's last entry). */
  logTerm: Term;
  index: LogIndex;
  entries: Entry[];
  commit: LogIndex;
  /**
   * On an answer: refused. A refused heartbeatResp says the follower's log ends before the heartbeat's
   * commit: it lost entries it acknowledged (its storage was wiped or replaced).
   */
  reject: boolean;
  /** On a rejected append: the follower's hint for fast backtracking; on a refused heartbeat: its last index. */
  rejectHint: LogIndex;
  /** Term of the follower's entry at `rejectHint`, so the leader can skip a whole term. */
  rejectTerm: Term;
  /** snap: the snapshot (metadata, and a chunk of data with `snapOffset`/`snapDone`). */
  snapshot?: Snapshot;
  snapOffset: number;
  snapDone: boolean;
  /** readIndex context, heartbeat context, or vote reason ('transfer'). */
  context: Uint8Array;
}
