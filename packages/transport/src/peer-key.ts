import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, StorageError } from '@cohort/core';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';

/** The file in the data dir that holds this node's libp2p identity. */
export const PEER_KEY_FILE = 'peer-key';

/**
 * Loads this node's Ed25519 identity from `<dataDir>/peer-key`, creating it
 * (mode 0600) on first start, so a restarted node keeps its PeerId.
 */
export async function loadOrCreatePeerKey(dataDir: string): Promise<PrivateKey> {
  const file = join(dataDir, PEER_KEY_FILE);
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new StorageError(`cannot read the peer identity ${file}: ${(err as Error).message}`);
    }
  }
  if (bytes !== undefined) {
    try {
      return privateKeyFromProtobuf(bytes);
    } catch (err) {
      throw new ConfigError(
        `the peer identity ${file} is corrupt (${(err as Error).message}); restore it from a backup, or delete it to ` +
          'create a new identity (peers that knew the old one must be restarted to accept the new one)',
      );
    }
  }
  const key = await generateKeyPair('Ed25519');
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    // Write then rename, so a crash never leaves a half-written identity behind.
    const tmp = `${file}.tmp`;
    await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    throw new StorageError(`cannot create the peer identity ${file}: ${(err as Error).message}; check the data dir`);
  }
  return key;
}

/**
 * The libp2p PeerId (as a string) of the node whose data dir is `dataDir`,
 * creating its identity on first use: what a joining node registers before
 * its transport starts.
 */
export async function localPeerId(dataDir: string): Promise<string> {
  return peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir)).toString();
}
