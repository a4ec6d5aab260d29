import { CodecError } from '../errors.js';
import type { GroupId, LogIndex, NodeId, Term } from '../ids.js';
import type { SnapshotMeta } from '../raft-types.js';
import { type CodecOptions, guard, guardEncode, openEnvelopeOf, sealEnvelope } from './envelope.js';
import * as pb from './generated/cohort-wire.js';
import { confStateFromPb, confStateToPb } from './raft-codec.js';

/**
 * One chunk of a snapshot a group's leader streams to a follower over
 * `Protocols.snapshot`, one chunk per request. A transfer is named by
 * (`leader`, `term`, `index`).
 */
export interface SnapshotChunk {
  group: GroupId;
  leader: NodeId;
  /** The leader's term. */
  term: Term;
  /** The applied index of the view streamed: the follower ends there. */
  index: LogIndex;
  /** 0, 1, 2, ... within the transfer. */
  seq: number;
  data: Uint8Array;
  /** The final chunk: the follower installs the snapshot on it. */
  last: boolean;
  /** On chunk 0 only: the snapshot's position and membership. */
  meta?: SnapshotMeta;
}

/**
 * The follower's answer to a {@link SnapshotChunk}, which is the flow control:
 * `next` (send chunk `nextSeq`), `installed`, `unknownTransfer` (start over),
 * or `refused` (with a reason).
 */
export type SnapshotAck =
  | { status: 'next'; nextSeq: number }
  | { status: 'installed' }
  | { status: 'unknownTransfer' }
  | { status: 'refused'; reason: string };

const statuses: Record<SnapshotAck['status'], pb.SnapshotAckStatus> = {
  next: pb.SnapshotAckStatus.SNAPSHOT_ACK_NEXT,
  installed: pb.SnapshotAckStatus.SNAPSHOT_ACK_INSTALLED,
  unknownTransfer: pb.SnapshotAckStatus.SNAPSHOT_ACK_UNKNOWN_TRANSFER,
  refused: pb.SnapshotAckStatus.SNAPSHOT_ACK_REFUSED,
};

function uint(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CodecError(`cannot encode ${field} = ${value}: it must be a non-negative safe integer`);
  }
  return value;
}

/** Encodes one snapshot chunk request; refuses a frame over `maxBytes` (send smaller chunks). */
export function encodeSnapshotChunk(c: SnapshotChunk, options: CodecOptions = {}): Uint8Array {
  uint(c.term, 'snapshotChunk.term');
  uint(c.index, 'snapshotChunk.index');
  uint(c.seq, 'snapshotChunk.seq');
  const msg: pb.SnapshotChunk = {
    group: c.group,
    leader: c.leader,
    term: c.term,
    index: c.index,
    seq: c.seq,
    data: c.data,
    last: c.last,
  };
  if (c.meta !== undefined) {
    uint(c.meta.index, 'snapshotChunk.meta.index');
    uint(c.meta.term, 'snapshotChunk.meta.term');
    msg.meta = { index: c.meta.index, term: c.meta.term, confState: confStateToPb(c.meta.confState) };
  }
  return sealEnvelope(
    'snapshotChunk',
    guardEncode('a snapshot chunk', () => pb.SnapshotChunk.encode(msg)),
    options,
  );
}

/** Decodes a frame written by {@link encodeSnapshotChunk}; throws CodecError on anything else. */
export function decodeSnapshotChunk(bytes: Uint8Array, options: CodecOptions = {}): SnapshotChunk {
  const payload = openEnvelopeOf('snapshotChunk', bytes, options);
  const m = guard('a snapshot chunk', () => pb.SnapshotChunk.decode(payload));
  if (m.group === '' || m.leader === '') throw new CodecError('cannot decode a snapshot chunk: no group or leader');
  if (m.seq === 0 && m.meta === undefined) {
    throw new CodecError(`cannot decode a snapshot chunk of group '${m.group}': chunk 0 carries no snapshot meta`);
  }
  const out: SnapshotChunk = {
    group: m.group,
    leader: m.leader,
    term: m.term,
    index: m.index,
    seq: m.seq,
    data: m.data,
    last: m.last,
  };
  if (m.meta !== undefined) {
    out.meta = { index: m.meta.index, term: m.meta.term, confState: confStateFromPb(m.meta.confState) };
  }
  return out;
}

/** Encodes a follower's answer to a snapshot chunk. */
export function encodeSnapshotAck(a: SnapshotAck, options: CodecOptions = {}): Uint8Array {
  const msg: pb.SnapshotAck = {
    status: statuses[a.status],
    nextSeq: a.status === 'next' ? uint(a.nextSeq, 'snapshotAck.nextSeq') : 0,
    reason: a.status === 'refused' ? a.reason : '',
  };
  return sealEnvelope('snapshotAck', pb.SnapshotAck.encode(msg), options);
}

/** Decodes a frame written by {@link encodeSnapshotAck}. */
export function decodeSnapshotAck(bytes: Uint8Array, options: CodecOptions = {}): SnapshotAck {
  const payload = openEnvelopeOf('snapshotAck', bytes, options);
  const m = guard('a snapshot ack', () => pb.SnapshotAck.decode(payload));
  switch (m.status) {
    case pb.SnapshotAckStatus.SNAPSHOT_ACK_NEXT:
      return { status: 'next', nextSeq: m.nextSeq };
    case pb.SnapshotAckStatus.SNAPSHOT_ACK_INSTALLED:
      return { status: 'installed' };
    case pb.SnapshotAckStatus.SNAPSHOT_ACK_UNKNOWN_TRANSFER:
      return { status: 'unknownTransfer' };
    case pb.SnapshotAckStatus.SNAPSHOT_ACK_REFUSED:
      return { status: 'refused', reason: m.reason };
    default:
      throw new CodecError(`cannot decode a snapshot ack: unknown status ${String(m.status)}`);
  }
}
