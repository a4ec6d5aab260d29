import type { LogIndex, Message, MessageType, NodeId } from '@cohort/core';

const EMPTY = new Uint8Array(0);

/** No node (no leader known, no vote cast). */
export const NONE: NodeId = '';

/** Builds a message with every unused field at its zero value. */
export function newMessage(fields: Partial<Message> & Pick<Message, 'type'>): Message {
  return {
    from: '',
    to: '',
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    rejectTerm: 0,
    snapOffset: 0,
    snapDone: false,
    context: EMPTY,
    ...fields,
  };
}

/** The vote context marking a campaign started by leadership transfer (it may break a leader lease). */
export const TRANSFER_CONTEXT = new TextEncoder().encode('transfer');

/** Whether a vote request comes from a leadership-transfer campaign. */
export function isTransferContext(ctx: Uint8Array): boolean {
  return ctx.length === TRANSFER_CONTEXT.length && ctx.every((b, i) => b === TRANSFER_CONTEXT[i]);
}

/**
 * Messages that depend on no unpersisted state but the term and vote, so they may leave before the
 * writes of their Ready (and of earlier ones) are durable, provided the term and vote are durable:
 * a leader's appends and heartbeats (Raft thesis §10.2.1: the leader counts itself toward a commit
 * only once its own write is durable), its TimeoutNow (sent to a voter whose acknowledged, durable log
 * already matches the leader's: the leader's own unwritten copy decides nothing), and a follower's
 * heartbeat answers (they vouch for the term only, never for log entries). Everything else (votes,
 * append answers) depends on this node's durable state and waits for its write.
 */
export function independentOfWrites(m: Message): boolean {
  return m.type === 'app' || m.type === 'heartbeat' || m.type === 'heartbeatResp' || m.type === 'timeoutNow';
}

/** The response type matching a vote request type. */
export function voteRespType(t: MessageType): MessageType {
  return t === 'preVote' ? 'preVoteResp' : 'voteResp';
}

const KNOWN: ReadonlySet<MessageType> = new Set<MessageType>([
  'app',
  'appResp',
  'vote',
  'voteResp',
  'preVote',
  'preVoteResp',
  'snap',
  'snapResp',
  'heartbeat',
  'heartbeatResp',
  'timeoutNow',
  'transferLeader',
  'readIndex',
  'readIndexResp',
  'prop',
]);

/** Whether `t` names a message type this engine understands. */
export function isKnownMessageType(t: string): t is MessageType {
  return KNOWN.has(t as MessageType);
}

/**
 * Whether append rejection `m` no longer describes this follower's log, whose commit index is now `commit`:
 * its hint is below that index. A rejection's hint is the follower's last entry whose term could still match
 * the leader's probe, and entries up to the commit index match every later leader's log, so a rejection made
 * now never hints below it. One that does was made before the log moved past it (a snapshot installed
 * between the engine's answer and its sending) and would send the leader back below what it just installed,
 * into a second snapshot. Dropping it is as safe as losing it on the network.
 */
export function obsoleteRejection(m: Message, commit: LogIndex): boolean {
  return m.type === 'appResp' && m.reject && m.rejectHint < commit;
}
