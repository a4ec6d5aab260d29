/** The versioned wire codec: protobuf envelopes for Raft messages, membership changes and forwarded commands. */
export {
  type CodecOptions,
  DEFAULT_MAX_FRAME_BYTES,
  MIN_WIRE_VERSION,
  type OpenedEnvelope,
  openEnvelope,
  type PayloadKindName,
  WIRE_VERSION,
} from './envelope.js';
export {
  decodeForwardRequest,
  decodeForwardResponse,
  encodeForwardRequest,
  encodeForwardResponse,
  errorFromForwardResponse,
  type ForwardRequest,
  type ForwardResponse,
  forwardResponseFromError,
} from './forward-codec.js';
export {
  type CoalescedHeartbeat,
  type CoalescedHeartbeatResponse,
  decodeConfChange,
  decodeRaftBatch,
  decodeRaftFrame,
  decodeRaftHeartbeats,
  decodeRaftMessage,
  encodeConfChange,
  encodeRaftBatch,
  encodeRaftHeartbeats,
  encodeRaftMessage,
  type GroupMessage,
  type RaftFrame,
  type RaftHeartbeats,
} from './raft-codec.js';
export {
  decodeSnapshotAck,
  decodeSnapshotChunk,
  encodeSnapshotAck,
  encodeSnapshotChunk,
  type SnapshotAck,
  type SnapshotChunk,
} from './snapshot-codec.js';
