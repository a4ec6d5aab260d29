import { CodecError } from '@cohort/core';
import type { Stream } from '@libp2p/interface';
import { type LengthPrefixedStream, lpStream } from '@libp2p/utils';

/** Room for the envelope and request id around a frame of the maximum size. */
const FRAME_OVERHEAD = 64;

/** A length-prefixed view of `stream` that refuses frames over `maxFrameBytes`. */
export function framed(stream: Stream, maxFrameBytes: number): LengthPrefixedStream<Stream> {
  // The byte buffer must hold one whole frame plus the start of the next.
  return lpStream(stream, {
    maxDataLength: maxFrameBytes + FRAME_OVERHEAD,
    maxBufferSize: 2 * (maxFrameBytes + FRAME_OVERHEAD),
  });
}

/** A frame over the size limit (sent or received). */
export class OversizedFrameError extends CodecError {}

/** The error for a frame of `bytes` over the limit. */
export function oversizedError(maxFrameBytes: number, bytes: number): OversizedFrameError {
  return new OversizedFrameError(
    `frame of ${bytes} bytes exceeds maxFrameBytes (${maxFrameBytes}); split it or raise the limit`,
  );
}
