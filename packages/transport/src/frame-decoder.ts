import { CodecError } from '@cohort/core';
import * as varint from 'uint8-varint';
import { Uint8ArrayList } from 'uint8arraylist';
import { oversizedError } from './framing.js';

/** The longest varint a frame length may take (a length below 2^35). */
const MAX_LENGTH_BYTES = 5;

/**
 * Splits the bytes of a frames stream (unsigned-varint length, then the
 * frame) into frames as they arrive, synchronously: each complete frame goes
 * to `onFrame` before the next chunk is taken, so nothing piles up beyond one
 * partial frame, however fast the peer sends. (A reader that awaits each
 * frame lets a burst of large frames outgrow any fixed read buffer.)
 */
export class FrameDecoder {
  private readonly buffer = new Uint8ArrayList();
  /** The length of the frame being received, once its prefix is complete. */
  private want: number | undefined;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onFrame: (frame: Uint8Array) => void,
  ) {}

  /**
   * Takes the next bytes of the stream; calls `onFrame` for every frame they
   * complete. Throws an `OversizedFrameError` on a length over `maxFrameBytes`
   * (as soon as its prefix arrives), a `CodecError` on a malformed prefix; the
   * stream must then be reset.
   */
  push(chunk: Uint8Array | Uint8ArrayList): void {
    this.buffer.append(chunk);
    while (true) {
      if (this.want === undefined) {
        const want = this.readLength();
        if (want === undefined) return;
        this.want = want;
      }
      if (this.buffer.byteLength < this.want) return;
      const frame = this.buffer.subarray(0, this.want);
      this.buffer.consume(this.want);
      this.want = undefined;
      this.onFrame(frame);
    }
  }

  /** Bytes of the partial frame held (its length prefix, once decoded, is not counted). */
  get buffered(): number {
    return this.buffer.byteLength;
  }

  /** Decodes and consumes a complete length prefix; undefined while it is incomplete. */
  private readLength(): number | undefined {
    const n = Math.min(this.buffer.byteLength, MAX_LENGTH_BYTES);
    let end = -1;
    for (let i = 0; i < n; i++) {
      if (((this.buffer.get(i) as number) & 0x80) === 0) {
        end = i;
        break;
      }
    }
    if (end === -1) {
      if (this.buffer.byteLength >= MAX_LENGTH_BYTES) throw new CodecError('malformed frame length prefix');
      return undefined;
    }
    const length = varint.decode(this.buffer);
    if (length > this.maxFrameBytes) throw oversizedError(this.maxFrameBytes, length);
    this.buffer.consume(end + 1);
    return length;
  }
}
