import { CodecError, type ConfChange, type ConfChangeSingle, type ConfChangeType } from '@cohort/core';

const VERSION = 1;
const TRANSITIONS = ['auto', 'joint', 'explicit'] as const;
const TYPES: readonly ConfChangeType[] = ['addVoter', 'addLearner', 'removeNode'];
const MAX_ID_BYTES = 255;

/**
 * Encodes a {@link ConfChange} as the data of a `confChange` entry.
 * Layout: version u8, transition u8, count u16, then per change type u8 +
 * id length u8 + id bytes (UTF-8), then context length u32 + context.
 */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const enc = new TextEncoder();
  const ids = cc.changes.map((c) => enc.encode(c.nodeId));
  let size = 4 + 4 + cc.context.length;
  for (const id of ids) {
    if (id.length > MAX_ID_BYTES) throw new CodecError(`conf change node id longer than ${MAX_ID_BYTES} bytes`);
    size += 2 + id.length;
  }
  if (cc.changes.length > 0xffff) throw new CodecError('conf change has more than 65535 changes');
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = VERSION;
  out[1] = TRANSITIONS.indexOf(cc.transition);
  view.setUint16(2, cc.changes.length);
  let p = 4;
  cc.changes.forEach((c, i) => {
    const id = ids[i] ?? new Uint8Array();
    out[p++] = TYPES.indexOf(c.type);
    out[p++] = id.length;
    out.set(id, p);
    p += id.length;
  });
  view.setUint32(p, cc.context.length);
  out.set(cc.context, p + 4);
  return out;
}

/** Decodes what {@link encodeConfChange} produced; throws `CodecError` on anything else. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const need = (p: number, n: number): void => {
    if (p + n > data.length) throw new CodecError(`conf change truncated at byte ${p} (length ${data.length})`);
  };
  need(0, 4);
  if (data[0] !== VERSION) throw new CodecError(`conf change version ${data[0]} unknown (expected ${VERSION})`);
  const transition = TRANSITIONS[data[1] ?? 255];
  if (!transition) throw new CodecError(`conf change transition code ${data[1]} unknown`);
  const count = view.getUint16(2);
  const dec = new TextDecoder('utf-8', { fatal: true });
  const changes: ConfChangeSingle[] = [];
  let p = 4;
  for (let i = 0; i < count; i++) {
    need(p, 2);
    const type = TYPES[data[p] ?? 255];
    if (!type) throw new CodecError(`conf change type code ${data[p]} unknown`);
    const len = data[p + 1] ?? 0;
    need(p + 2, len);
    let nodeId: string;
    try {
      nodeId = dec.decode(data.subarray(p + 2, p + 2 + len));
    } catch {
      throw new CodecError('conf change node id is not valid UTF-8');
    }
    changes.push({ type, nodeId });
    p += 2 + len;
  }
  need(p, 4);
  const ctxLen = view.getUint32(p);
  need(p + 4, ctxLen);
  if (p + 4 + ctxLen !== data.length) throw new CodecError('conf change has trailing bytes');
  return { transition, changes, context: data.slice(p + 4, p + 4 + ctxLen) };
}
