import { createHash } from 'node:crypto';
import { ConfigError } from '@cohort/core';

/** The header of a libp2p private-network key file (`swarm.key`). */
const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/';

/** The fewest characters a cluster secret that is not a swarm key may have. */
export const MIN_SECRET_CHARS = 16;

const utf8 = new TextEncoder();

/**
 * The pre-shared key of a cluster (libp2p's private-network key, the bytes
 * of a `swarm.key` file) from the text of a secret file: a libp2p swarm key
 * as it is, or any other secret of at least {@link MIN_SECRET_CHARS}
 * characters (surrounding whitespace ignored), hashed into one. Every node of
 * a cluster must be given the same secret. `source` names the file in errors.
 */
export function clusterSecretFromText(text: string, source = 'the cluster secret'): Uint8Array {
  const trimmed = text.trim();
  if (trimmed.startsWith(SWARM_KEY_HEADER)) {
    const lines = trimmed.split(/\r?\n/).map((l) => l.trim());
    if (lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')) {
      throw new ConfigError(
        `${source} starts like a libp2p swarm key but is not one: expected '${SWARM_KEY_HEADER}', '/base16/' and 64 hex digits on three lines`,
      );
    }
    return utf8.encode(`${SWARM_KEY_HEADER}\n/base16/\n${lines[2]!.toLowerCase()}`);
  }
  if (trimmed.length < MIN_SECRET_CHARS) {
    throw new ConfigError(
      `${source} holds ${trimmed.length} characters; a cluster secret needs at least ${MIN_SECRET_CHARS} (generate one with: openssl rand -hex 32)`,
    );
  }
  const key = createHash('sha256').update('cohort cluster secret 1\0').update(trimmed).digest('hex');
  return utf8.encode(`${SWARM_KEY_HEADER}\n/base16/\n${key}`);
}
