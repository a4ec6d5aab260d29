import { randomBytes } from 'node:crypto';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import fc from 'fast-check';
import { Uint8ArrayList } from 'uint8arraylist';
import { describe, expect, it } from 'vitest';
import { NODE_CIPHER_MIN_BYTES, noiseCrypto } from '../src/noise-crypto.js';

/** A message as the crypto takes it: one array, or Noise's list of pieces. */
type Message = Parameters<typeof noiseCrypto.chaCha20Poly1305Encrypt>[0];

/** A sealed or opened message's bytes, joined. */
const bytes = (x: { subarray(): Uint8Array }): Uint8Array => x.subarray();

/** `data` cut into pieces at `cuts` (positions, any order), as a list. */
function pieces(data: Uint8Array, cuts: number[]): Message {
  const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const list = new Uint8ArrayList();
  let from = 0;
  for (const c of [...at, data.length]) {
    list.append(data.subarray(from, c));
    from = c;
  }
  // The same class as Noise's, from this package's copy of it.
  return list as unknown as Message;
}

const SIZES = [0, 1, 100, NODE_CIPHER_MIN_BYTES - 1, NODE_CIPHER_MIN_BYTES, NODE_CIPHER_MIN_BYTES + 1, 1500, 8000];

describe('noiseCrypto', () => {
  it("reads the default crypto's frames and writes frames it reads, byte for byte the same", () => {
    const k = randomBytes(32);
    const nonce = randomBytes(12);
    const ad = randomBytes(32);
    for (const size of SIZES) {
      const plain = randomBytes(size);
      const ours = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k));
      const theirs = bytes(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k));
      expect(Buffer.from(ours).equals(Buffer.from(theirs)), `size ${size}`).toBe(true);
      expect(Buffer.from(bytes(defaultCrypto.chaCha20Poly1305Decrypt(ours, nonce, ad, k))).equals(plain)).toBe(true);
      expect(Buffer.from(bytes(noiseCrypto.chaCha20Poly1305Decrypt(theirs, nonce, ad, k))).equals(plain)).toBe(true);
    }
  });

  it('takes lists of pieces as single arrays, for any message, key, nonce and cuts', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (plain, k, nonce, cuts) => {
          const ad = new Uint8Array(0);
          const whole = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k));
          const listed = bytes(noiseCrypto.chaCha20Poly1305Encrypt(pieces(plain, cuts), nonce, ad, k));
          expect(Buffer.from(listed).equals(Buffer.from(whole))).toBe(true);
          const back = bytes(noiseCrypto.chaCha20Poly1305Decrypt(pieces(whole, cuts), nonce, ad, k));
          expect(Buffer.from(back).equals(Buffer.from(plain))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses an altered frame and a frame sealed under another key, short or long', () => {
    const k = randomBytes(32);
    const other = randomBytes(32);
    const nonce = randomBytes(12);
    const ad = new Uint8Array(0);
    for (const size of [100, 1500]) {
      const sealed = Buffer.from(bytes(noiseCrypto.chaCha20Poly1305Encrypt(randomBytes(size), nonce, ad, k)));
      const altered = Buffer.from(sealed);
      altered[3] = (altered[3] as number) ^ 1;
      expect(() => noiseCrypto.chaCha20Poly1305Decrypt(altered, nonce, ad, k)).toThrow();
      expect(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, other)).toThrow();
      // The key object kept for `k` was not spoiled by the failures.
      expect(noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, k).byteLength).toBe(size);
    }
  });

  it('keeps each key apart when two sessions alternate', () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    const nonce = randomBytes(12);
    const ad = new Uint8Array(0);
    const plain = randomBytes(2000);
    for (let i = 0; i < 3; i++) {
      for (const k of [a, b]) {
        const sealed = noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k);
        const expected = defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k);
        expect(Buffer.from(bytes(sealed)).equals(Buffer.from(bytes(expected)))).toBe(true);
      }
    }
  });
});
