import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApiError, keyFromPath, returnPreference } from '../src/http-codec.js';

const PREFIX = '/v1/kv/';

/** The key bytes as the path's definition says: each escape one byte, each other character its UTF-8. */
function reference(path: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < path.length; ) {
    if (path[i] === '%') {
      out.push(Number.parseInt(path.slice(i + 1, i + 3), 16));
      i += 3;
      continue;
    }
    const ch = String.fromCodePoint(path.codePointAt(i) as number);
    out.push(...Buffer.from(ch, 'utf8'));
    i += ch.length;
  }
  return new Uint8Array(out);
}

const percentEscape = fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, '0')}`);
/** Path text: ASCII, other characters (surrogate pairs and lone surrogates too), escapes, in any mix. */
const pathPiece = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', minLength: 1 }).map((s) => s.replaceAll('%', '').replaceAll('?', '') || 'k'),
  fc.string({ unit: 'binary', minLength: 1 }).map((s) => s.replaceAll('%', '').replaceAll('?', '') || 'é'),
  fc.constantFrom('\uD800', '\uDFFF', '😀', '/'),
  percentEscape,
);

describe('keyFromPath', () => {
  it('decodes escapes to bytes and other characters to UTF-8, as the per-character definition does', () => {
    fc.assert(
      fc.property(fc.array(pathPiece, { minLength: 1, maxLength: 12 }), (pieces) => {
        const path = pieces.join('');
        expect(keyFromPath(`${PREFIX}${path}`, PREFIX)).toEqual(reference(path));
        expect(keyFromPath(`${PREFIX}${path}?encoding=base64`, PREFIX)).toEqual(reference(path));
      }),
    );
  });

  it('returns a key of its own memory (a key outlives the request: Node pools small buffers)', () => {
    const plain = keyFromPath(`${PREFIX}key:000000000042`, PREFIX);
    expect(new TextDecoder().decode(plain)).toBe('key:000000000042');
    expect(plain.byteOffset).toBe(0);
    expect(plain.buffer.byteLength).toBe(plain.byteLength);
    const escaped = keyFromPath(`${PREFIX}a%2Fb%FF`, PREFIX);
    expect([...escaped]).toEqual([0x61, 0x2f, 0x62, 0xff]);
    expect(escaped.buffer.byteLength).toBe(escaped.byteLength);
  });

  it('refuses an empty key and a malformed escape, naming where it is', () => {
    expect(() => keyFromPath(PREFIX, PREFIX)).toThrow(/key is empty/);
    expect(() => keyFromPath(`${PREFIX}?encoding=utf8`, PREFIX)).toThrow(/key is empty/);
    for (const [path, what] of [
      ['a%zz', "'%zz' at byte 1"],
      ['ab%4', "'%4' at byte 2"],
      ['%', "'%' at byte 0"],
      ['x%41%g1', "'%g1' at byte 4"],
    ] as const) {
      let err: unknown;
      try {
        keyFromPath(`${PREFIX}${path}`, PREFIX);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).status).toBe(400);
      expect((err as ApiError).message).toContain(what);
    }
  });
});

describe('returnPreference', () => {
  it('reads the return preference of a Prefer header as RFC 7240 writes it', () => {
    expect(returnPreference(undefined)).toBeUndefined();
    expect(returnPreference('return=minimal')).toBe('minimal');
    expect(returnPreference('RETURN = "Representation"')).toBe('representation');
    expect(returnPreference('respond-async, wait=10, return=minimal; foo=bar')).toBe('minimal');
    expect(returnPreference(['handling=lenient', 'return=minimal'])).toBe('minimal');
    // Only the first return preference counts (RFC 7240 §2); an unknown value or none asks for nothing.
    expect(returnPreference('return=representation, return=minimal')).toBe('representation');
    expect(returnPreference('return=minimalist')).toBeUndefined();
    expect(returnPreference('return')).toBeUndefined();
    expect(returnPreference('returned=minimal, wait=5')).toBeUndefined();
  });
});
