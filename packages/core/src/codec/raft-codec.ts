import { CodecError } from '../errors.js';
import type { GroupId } from '../ids.js';
import type {
  ConfChange,
  ConfChangeType,
  ConfState,
  Entry,
  EntryType,
  Message,
  MessageType,
  Snapshot,
} from '../raft-types.js';
import { type CodecOptions, guard, guardEncode, openEnvelope, openEnvelopeOf, sealEnvelope } from './envelope.js';
import * as pb from './generated/cohort-wire.js';

/** A Raft message with the group it belongs to (multi-Raft: groups share connections). */
export interface GroupMessage {
  group: GroupId;
  message: Message;
}

const messageTypes: Record<MessageType, pb.MessageType> = {
  app: pb.MessageType.MSG_APP,
  appResp: pb.MessageType.MSG_APP_RESP,
  vote: pb.MessageType.MSG_VOTE,
  voteResp: pb.MessageType.MSG_VOTE_RESP,
  preVote: pb.MessageType.MSG_PRE_VOTE,
  preVoteResp: pb.MessageType.MSG_PRE_VOTE_RESP,
  snap: pb.MessageType.MSG_SNAP,
  snapResp: pb.MessageType.MSG_SNAP_RESP,
  heartbeat: pb.MessageType.MSG_HEARTBEAT,
  heartbeatResp: pb.MessageType.MSG_HEARTBEAT_RESP,
  timeoutNow: pb.MessageType.MSG_TIMEOUT_NOW,
  transferLeader: pb.MessageType.MSG_TRANSFER_LEADER,
  readIndex: pb.MessageType.MSG_READ_INDEX,
  readIndexResp: pb.MessageType.MSG_READ_INDEX_RESP,
  prop: pb.MessageType.MSG_PROP,
};
const messageTypesBack = invert(messageTypes);

const entryTypes: Record<EntryType, pb.EntryType> = {
  normal: pb.EntryType.ENTRY_NORMAL,
  confChange: pb.EntryType.ENTRY_CONF_CHANGE,
};
const entryTypesBack = invert(entryTypes);

const transitions: Record<ConfChange['transition'], pb.ConfChangeTransition> = {
  auto: pb.ConfChangeTransition.TRANSITION_AUTO,
  joint: pb.ConfChangeTransition.TRANSITION_JOINT,
  explicit: pb.ConfChangeTransition.TRANSITION_EXPLICIT,
};
const transitionsBack = invert(transitions);

const changeTypes: Record<ConfChangeType, pb.ConfChangeType> = {
  addVoter: pb.ConfChangeType.CHANGE_ADD_VOTER,
  addLearner: pb.ConfChangeType.CHANGE_ADD_LEARNER,
  removeNode: pb.ConfChangeType.CHANGE_REMOVE_NODE,
};
const changeTypesBack = invert(changeTypes);

function invert<K extends string, V>(table: Record<K, V>): Map<V, K> {
  return new Map(Object.entries(table).map(([k, v]) => [v as V, k as K]));
}

function back<K, V>(table: Map<V, K>, value: V, what: string): K {
  const k = table.get(value);
  if (k === undefined) throw new CodecError(`cannot decode ${what}: unknown value ${String(value)}`);
  return k;
}

/** Encodes one Raft message of `group` as a versioned frame. */
export function encodeRaftMessage(group: GroupId, m: Message, options: CodecOptions = {}): Uint8Array {
  const payload = guardEncode('a raft message', () => pb.GroupMessage.encode({ group, message: messageToPb(m) }));
  return sealEnvelope('raftMessage', payload, options);
}

/** Decodes a frame written by {@link encodeRaftMessage}; throws CodecError on anything else. */
export function decodeRaftMessage(bytes: Uint8Array, options: CodecOptions = {}): GroupMessage {
  const payload = openEnvelopeOf('raftMessage', bytes, options);
  return guard('a raft message', () => groupMessageFromPb(pb.GroupMessage.decode(payload)));
}

/** Encodes several Raft messages (of any groups) bound for one peer as a single frame. */
export function encodeRaftBatch(messages: readonly GroupMessage[], options: CodecOptions = {}): Uint8Array {
  const pbMessages = messages.map(({ group, message }) => ({ group, message: messageToPb(message) }));
  const payload = guardEncode('a raft batch', () => pb.RaftBatch.encode({ messages: pbMessages }));
  return sealEnvelope('raftBatch', payload, options);
}

/** Decodes a frame written by {@link encodeRaftBatch}. */
export function decodeRaftBatch(bytes: Uint8Array, options: CodecOptions = {}): GroupMessage[] {
  const payload = openEnvelopeOf('raftBatch', bytes, options);
  return guard('a raft batch', () => pb.RaftBatch.decode(payload).messages.map(groupMessageFromPb));
}

/**
 * A leader's heartbeat of one group, as coalesced per peer: the sender and
 * receiver are the frame's, so only what differs per group travels.
 */
export interface CoalescedHeartbeat {
  group: GroupId;
  term: number;
  commit: number;
  /** The leader's tick when sent (a heartbeat message's `index`). */
  tick: number;
  /** A ReadIndex round's context; empty when none. */
  context: Uint8Array;
  /** The group is idle: a follower holding exactly `commit` at `term` stops ticking it and does not answer. */
  quiesce: boolean;
}

/** A follower's answer to a {@link CoalescedHeartbeat} (a heartbeatResp message). */
export interface CoalescedHeartbeatResponse {
  group: GroupId;
  term: number;
  tick: number;
  reject: boolean;
  rejectHint: number;
  context: Uint8Array;
}

/** Every heartbeat and heartbeat response one node sends another in one round. */
export interface RaftHeartbeats {
  heartbeats: CoalescedHeartbeat[];
  responses: CoalescedHeartbeatResponse[];
}

/** Encodes coalesced heartbeats as one frame (payload kind `raftHeartbeats`). */
export function encodeRaftHeartbeats(h: RaftHeartbeats, options: CodecOptions = {}): Uint8Array {
  for (const b of h.heartbeats) {
    uint(b.term, 'heartbeat.term');
    uint(b.commit, 'heartbeat.commit');
    uint(b.tick, 'heartbeat.tick');
  }
  for (const r of h.responses) {
    uint(r.term, 'heartbeatResponse.term');
    uint(r.tick, 'heartbeatResponse.tick');
    uint(r.rejectHint, 'heartbeatResponse.rejectHint');
  }
  const payload = guardEncode('raft heartbeats', () => pb.RaftHeartbeats.encode(h));
  return sealEnvelope('raftHeartbeats', payload, options);
}

/** Decodes a frame written by {@link encodeRaftHeartbeats}. */
export function decodeRaftHeartbeats(bytes: Uint8Array, options: CodecOptions = {}): RaftHeartbeats {
  return heartbeatsFromPayload(openEnvelopeOf('raftHeartbeats', bytes, options));
}

function heartbeatsFromPayload(payload: Uint8Array): RaftHeartbeats {
  return guard('raft heartbeats', () => {
    const d = pb.RaftHeartbeats.decode(payload);
    return {
      heartbeats: d.heartbeats.map((b) => ({
        group: b.group,
        term: b.term,
        commit: b.commit,
        tick: b.tick,
        context: b.context,
        quiesce: b.quiesce,
      })),
      responses: d.responses.map((r) => ({
        group: r.group,
        term: r.term,
        tick: r.tick,
        reject: r.reject,
        rejectHint: r.rejectHint,
        context: r.context,
      })),
    };
  });
}

/** What a frame of the Raft protocol carries: a batch of messages, or coalesced heartbeats. */
export type RaftFrame =
  | { kind: 'batch'; messages: GroupMessage[] }
  | { kind: 'heartbeats'; heartbeats: RaftHeartbeats };

/** Decodes either frame of the Raft protocol ({@link encodeRaftBatch} or {@link encodeRaftHeartbeats}). */
export function decodeRaftFrame(bytes: Uint8Array, options: CodecOptions = {}): RaftFrame {
  const env = openEnvelope(bytes, options);
  if (env.kind === 'raftHeartbeats') return { kind: 'heartbeats', heartbeats: heartbeatsFromPayload(env.payload) };
  if (env.kind !== 'raftBatch') throw new CodecError(`cannot decode a raft frame: the frame carries ${env.kind}`);
  return {
    kind: 'batch',
    messages: guard('a raft batch', () => pb.RaftBatch.decode(env.payload).messages.map(groupMessageFromPb)),
  };
}

/** Encodes a membership change, as carried in the data of a `confChange` entry. */
export function encodeConfChange(cc: ConfChange, options: CodecOptions = {}): Uint8Array {
  return sealEnvelope(
    'confChange',
    guardEncode('a conf change', () => pb.ConfChange.encode(confChangeToPb(cc))),
    options,
  );
}

/** Decodes a frame written by {@link encodeConfChange}. */
export function decodeConfChange(bytes: Uint8Array, options: CodecOptions = {}): ConfChange {
  const payload = openEnvelopeOf('confChange', bytes, options);
  return guard('a conf change', () => confChangeFromPb(pb.ConfChange.decode(payload)));
}

function groupMessageFromPb(g: pb.GroupMessage): GroupMessage {
  if (g.message === undefined) throw new CodecError(`cannot decode a raft message of group '${g.group}': it is empty`);
  return { group: g.group, message: messageFromPb(g.message) };
}

/** Protobuf would silently truncate or wrap a bad number; refuse it at the boundary instead. */
function uint(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CodecError(`cannot encode ${field} = ${value}: it must be a non-negative safe integer`);
  }
  return value;
}

function messageToPb(m: Message): pb.Message {
  uint(m.term, 'message.term');
  uint(m.logTerm, 'message.logTerm');
  uint(m.index, 'message.index');
  uint(m.commit, 'message.commit');
  uint(m.rejectHint, 'message.rejectHint');
  uint(m.rejectTerm, 'message.rejectTerm');
  uint(m.snapOffset, 'message.snapOffset');
  const out: pb.Message = {
    type: messageTypes[m.type],
    from: m.from,
    to: m.to,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries.map(entryToPb),
    commit: m.commit,
    reject: m.reject,
    rejectHint: m.rejectHint,
    rejectTerm: m.rejectTerm,
    snapOffset: m.snapOffset,
    snapDone: m.snapDone,
    context: m.context,
  };
  if (m.snapshot !== undefined) out.snapshot = snapshotToPb(m.snapshot);
  return out;
}

function messageFromPb(m: pb.Message): Message {
  const out: Message = {
    type: back(messageTypesBack, m.type, 'a raft message type'),
    from: m.from,
    to: m.to,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries.map(entryFromPb),
    commit: m.commit,
    reject: m.reject,
    rejectHint: m.rejectHint,
    rejectTerm: m.rejectTerm,
    snapOffset: m.snapOffset,
    snapDone: m.snapDone,
    context: m.context,
  };
  if (m.snapshot !== undefined) out.snapshot = snapshotFromPb(m.snapshot);
  return out;
}

function entryToPb(e: Entry): pb.Entry {
  uint(e.term, 'entry.term');
  uint(e.index, 'entry.index');
  return { term: e.term, index: e.index, type: entryTypes[e.type], data: e.data };
}

function entryFromPb(e: pb.Entry): Entry {
  return { term: e.term, index: e.index, type: back(entryTypesBack, e.type, 'an entry type'), data: e.data };
}

/** Internal to the codec: a membership as protobuf. */
export function confStateToPb(c: ConfState): pb.ConfState {
  return {
    voters: c.voters,
    learners: c.learners,
    votersOutgoing: c.votersOutgoing,
    learnersNext: c.learnersNext,
    autoLeave: c.autoLeave,
  };
}

/** Internal to the codec: a membership from protobuf (absent: empty). */
export function confStateFromPb(c: pb.ConfState | undefined): ConfState {
  return {
    voters: c?.voters ?? [],
    learners: c?.learners ?? [],
    votersOutgoing: c?.votersOutgoing ?? [],
    learnersNext: c?.learnersNext ?? [],
    autoLeave: c?.autoLeave ?? false,
  };
}

function snapshotToPb(s: Snapshot): pb.Snapshot {
  uint(s.meta.index, 'snapshot.meta.index');
  uint(s.meta.term, 'snapshot.meta.term');
  return {
    meta: { index: s.meta.index, term: s.meta.term, confState: confStateToPb(s.meta.confState) },
    data: s.data,
  };
}

function snapshotFromPb(s: pb.Snapshot): Snapshot {
  return {
    meta: { index: s.meta?.index ?? 0, term: s.meta?.term ?? 0, confState: confStateFromPb(s.meta?.confState) },
    data: s.data,
  };
}

function confChangeToPb(cc: ConfChange): pb.ConfChange {
  return {
    transition: transitions[cc.transition],
    changes: cc.changes.map((c) => ({ type: changeTypes[c.type], nodeId: c.nodeId })),
    context: cc.context,
  };
}

function confChangeFromPb(cc: pb.ConfChange): ConfChange {
  return {
    transition: back(transitionsBack, cc.transition, 'a conf change transition'),
    changes: cc.changes.map((c) => ({ type: back(changeTypesBack, c.type, 'a conf change type'), nodeId: c.nodeId })),
    context: cc.context,
  };
}
