import { CodecError } from '../errors.js';
import { Envelope, PayloadKind } from './generated/cohort-wire.js';

/** The wire version this build writes. Bump it when a change needs every reader to understand it. */
export const WIRE_VERSION = 1;

/** The oldest wire version this build still reads. */
export const MIN_WIRE_VERSION = 1;

/** The largest encoded frame accepted by default: 16 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** Closes every envelope; its absence means the frame was cut short. */
const END_MARKER = 0x436f6872;

/** What a frame carries; written in every envelope so a reader can tell frames apart. */
export type PayloadKindName =
  | 'raftMessage'
  | 'raftBatch'
  | 'confChange'
  | 'forwardRequest'
  | 'forwardResponse'
  | 'snapshotChunk'
  | 'snapshotAck'
  | 'raftHeartbeats';

/** Options of every decoder and encoder. */
export interface CodecOptions {
  /**
   * Frames larger than this are refused with a CodecError.
   * @default DEFAULT_MAX_FRAME_BYTES (16 MiB)
   */
  maxBytes?: number;
}

const toPb: Record<PayloadKindName, PayloadKind> = {
  raftMessage: PayloadKind.RAFT_MESSAGE,
  raftBatch: PayloadKind.RAFT_BATCH,
  confChange: PayloadKind.CONF_CHANGE,
  forwardRequest: PayloadKind.FORWARD_REQUEST,
  forwardResponse: PayloadKind.FORWARD_RESPONSE,
  snapshotChunk: PayloadKind.SNAPSHOT_CHUNK,
  snapshotAck: PayloadKind.SNAPSHOT_ACK,
  raftHeartbeats: PayloadKind.RAFT_HEARTBEATS,
};

const fromPb = new Map<PayloadKind, PayloadKindName>(
  Object.entries(toPb).map(([name, pb]) => [pb, name as PayloadKindName]),
);

/** Wraps an encoded payload in a versioned envelope, refusing results over the size limit. */
export function sealEnvelope(kind: PayloadKindName, payload: Uint8Array, options: CodecOptions = {}): Uint8Array {
  const bytes = Envelope.encode({ version: WIRE_VERSION, kind: toPb[kind], payload, endMarker: END_MARKER });
  const max = options.maxBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (bytes.byteLength > max) {
    throw new CodecError(
      `cannot encode ${kind}: ${bytes.byteLength} bytes exceeds the frame limit of ${max} bytes; send fewer or smaller entries per message`,
    );
  }
  return bytes;
}

/** A decoded envelope: the writer's version, the payload kind and its bytes. */
export interface OpenedEnvelope {
  version: number;
  kind: PayloadKindName;
  payload: Uint8Array;
}

/**
 * Reads an envelope, checking size and version before anything else.
 * Throws CodecError on garbage, oversized frames, unknown kinds and versions
 * newer than {@link WIRE_VERSION}.
 */
export function openEnvelope(bytes: Uint8Array, options: CodecOptions = {}): OpenedEnvelope {
  const max = options.maxBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (!(bytes instanceof Uint8Array)) throw new CodecError('cannot decode a frame: expected a Uint8Array');
  if (bytes.byteLength > max) {
    throw new CodecError(`cannot decode a frame of ${bytes.byteLength} bytes: the limit is ${max} bytes`);
  }
  const env = guard('envelope', () => Envelope.decode(bytes));
  if (env.version === 0) {
    throw new CodecError('cannot decode a frame: it has no wire version, so it was not written by Cohort');
  }
  if (env.version > WIRE_VERSION) {
    throw new CodecError(
      `cannot decode a frame of wire version ${env.version}: this node reads versions ${MIN_WIRE_VERSION} to ${WIRE_VERSION}; upgrade this node`,
    );
  }
  if (env.version < MIN_WIRE_VERSION) {
    throw new CodecError(
      `cannot decode a frame of wire version ${env.version}: this node reads versions ${MIN_WIRE_VERSION} to ${WIRE_VERSION}; upgrade the sender`,
    );
  }
  if (env.endMarker !== END_MARKER) throw new CodecError('cannot decode a frame: it is truncated (no end marker)');
  const kind = fromPb.get(env.kind);
  if (kind === undefined) throw new CodecError(`cannot decode a frame: unknown payload kind ${String(env.kind)}`);
  return { version: env.version, kind, payload: env.payload };
}

/** Opens an envelope and checks that it carries `kind`. */
export function openEnvelopeOf(kind: PayloadKindName, bytes: Uint8Array, options: CodecOptions = {}): Uint8Array {
  const env = openEnvelope(bytes, options);
  if (env.kind !== kind) throw new CodecError(`cannot decode ${kind}: the frame carries ${env.kind}`);
  return env.payload;
}

/** Runs a protons decoder, turning whatever it throws into a CodecError naming `what`. */
export function guard<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof CodecError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new CodecError(`cannot decode ${what}: ${reason} (truncated or corrupt frame)`);
  }
}

/** Runs a protons encoder, turning what it throws (a negative or fractional number, say) into a CodecError. */
export function guardEncode<T>(what: string, encode: () => T): T {
  try {
    return encode();
  } catch (err) {
    if (err instanceof CodecError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new CodecError(`cannot encode ${what}: ${reason}; numbers must be non-negative safe integers`);
  }
}
