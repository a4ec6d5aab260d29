import { CodecError, type NodeId } from '@cohort/core';

/**
 * The first frame on every stream: who opens it, whom it is for, and whether
 * it carries a run of one-way frames or a single request.
 * Layout: [version 1][mode][length of from][from utf-8][to utf-8].
 */
export interface Hello {
  mode: StreamMode;
  from: NodeId;
  to: NodeId;
}

/** `frames`: a long-lived stream of one-way frames; `request`: one request, one response. */
export type StreamMode = 'frames' | 'request';

const HELLO_VERSION = 1;
const MAX_ID_BYTES = 255;
const modes: StreamMode[] = ['frames', 'request'];
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

export function encodeHello(hello: Hello): Uint8Array {
  const from = utf8.encode(hello.from);
  const to = utf8.encode(hello.to);
  if (from.length > MAX_ID_BYTES || to.length > MAX_ID_BYTES) {
    throw new CodecError(`node ids are limited to ${MAX_ID_BYTES} bytes: '${hello.from}' -> '${hello.to}'`);
  }
  const out = new Uint8Array(3 + from.length + to.length);
  out[0] = HELLO_VERSION;
  out[1] = modes.indexOf(hello.mode);
  out[2] = from.length;
  out.set(from, 3);
  out.set(to, 3 + from.length);
  return out;
}

export function decodeHello(bytes: Uint8Array): Hello {
  if (bytes.length < 3) throw new CodecError(`stream hello of ${bytes.length} bytes is too short`);
  if (bytes[0] !== HELLO_VERSION) throw new CodecError(`stream hello of unknown version ${bytes[0]}`);
  const mode = modes[bytes[1] ?? -1];
  if (mode === undefined) throw new CodecError(`stream hello of unknown mode ${bytes[1]}`);
  const fromLength = bytes[2] ?? 0;
  if (bytes.length < 3 + fromLength || bytes.length > 3 + 2 * MAX_ID_BYTES) {
    throw new CodecError('stream hello has a malformed length');
  }
  try {
    return {
      mode,
      from: fromUtf8.decode(bytes.subarray(3, 3 + fromLength)),
      to: fromUtf8.decode(bytes.subarray(3 + fromLength)),
    };
  } catch {
    throw new CodecError('stream hello carries node ids that are not UTF-8');
  }
}
