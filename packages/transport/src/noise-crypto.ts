import { type KeyObject, createCipheriv, createDecipheriv, createSecretKey } from 'node:crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';

/** A message as Noise hands it over: one array, or a list of pieces (Noise's own `Uint8ArrayList`). */
type Message = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0];
type Sealed = ReturnType<ICryptoInterface['chaCha20Poly1305Encrypt']>;

const ALGORITHM = 'chacha20-poly1305';
const TAG_BYTES = 16;

/**
 * Below this many bytes a message goes to the default implementation (a
 * WebAssembly ChaCha20-Poly1305, faster than a Node cipher for short
 * messages); from it on, to Node's cipher with the key object made once.
 * Measured on this project's machines: Node's cipher took 8-10 µs for a
 * 1.5 KB frame with a kept key object against 24-28 µs when given the key's
 * bytes (as the default does: a key object is made inside every call), and
 * overtakes the WebAssembly one between 300 and 1,000 bytes.
 */
export const NODE_CIPHER_MIN_BYTES = 512;

/**
 * Key objects by the key's bytes as Noise hands them over: each direction of
 * a session keeps one `Uint8Array` for its key and passes that same array on
 * every call, so a session's key object is made once and goes with it.
 */
const keys = new WeakMap<Uint8Array, KeyObject>();

function keyObject(k: Uint8Array): KeyObject {
  let key = keys.get(k);
  if (key === undefined) {
    key = createSecretKey(k);
    keys.set(k, key);
  }
  return key;
}

function encrypt(plaintext: Message, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array): Sealed {
  if (plaintext.byteLength < NODE_CIPHER_MIN_BYTES)
    return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k);
  const cipher = createCipheriv(ALGORITHM, keyObject(k), nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(ad, { plaintextLength: plaintext.byteLength });
  const parts =
    plaintext instanceof Uint8Array ? [cipher.update(plaintext)] : [...plaintext].map((b) => cipher.update(b));
  parts.push(cipher.final(), cipher.getAuthTag());
  return Buffer.concat(parts, plaintext.byteLength + TAG_BYTES);
}

function decrypt(ciphertext: Message, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array, dst?: Uint8Array): Sealed {
  if (ciphertext.byteLength < NODE_CIPHER_MIN_BYTES) {
    return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst);
  }
  const bodyBytes = ciphertext.byteLength - TAG_BYTES;
  const decipher = createDecipheriv(ALGORITHM, keyObject(k), nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(ad, { plaintextLength: bodyBytes });
  decipher.setAuthTag(ciphertext.subarray(bodyBytes));
  // A list's `subarray` joins its pieces (a copy when there are several).
  const body = decipher.update(ciphertext.subarray(0, bodyBytes));
  // Throws when the tag does not match: the frame was altered or the key is wrong.
  const final = decipher.final();
  return final.byteLength > 0 ? Buffer.concat([body, final], body.byteLength + final.byteLength) : body;
}

/**
 * Noise's crypto with ChaCha20-Poly1305 through Node's cipher on a key object
 * kept per session key, for frames from {@link NODE_CIPHER_MIN_BYTES} on; the
 * rest (the handshake's hashing, key agreement, short frames) is Noise's
 * default. Same algorithm and wire format: a peer using the default reads it.
 */
export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt: encrypt,
  chaCha20Poly1305Decrypt: decrypt,
};
