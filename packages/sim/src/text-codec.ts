const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Longest text copied by hand; longer text goes through the platform codec, which wins on size. */
const SHORT = 256;

/**
 * UTF-8 encodes `s`. The simulator encodes short ASCII strings for every
 * client command and read context: copying their char codes is much cheaper
 * than a `TextEncoder` call, and gives the same bytes.
 */
export function encodeText(s: string): Uint8Array {
  if (s.length > SHORT) return encoder.encode(s);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return encoder.encode(s);
    out[i] = c;
  }
  return out;
}

/** UTF-8 decodes `b`, short ASCII by hand (see {@link encodeText}). */
export function decodeText(b: Uint8Array): string {
  if (b.length > SHORT) return decoder.decode(b);
  let s = '';
  for (let i = 0; i < b.length; i++) {
    const c = b[i] as number;
    if (c >= 0x80) return decoder.decode(b);
    s += String.fromCharCode(c);
  }
  return s;
}
