/**
 * @cohort/transport: libp2p (TCP + Noise + Yamux) behind the Transport
 * interface of @cohort/core, with a persistent peer identity, one protocol per
 * subsystem and length-prefixed frames with a size limit.
 */
export { toHostPort, toMultiaddr } from './address.js';
export { clusterSecretFromText, MIN_SECRET_CHARS } from './cluster-secret.js';
export { createLibp2pTransport, Libp2pTransport } from './libp2p-transport.js';
export type { FaultHook, Libp2pTransportOptions, ResolvedOptions, TransportStats } from './options.js';
export { loadOrCreatePeerKey, localPeerId, PEER_KEY_FILE } from './peer-key.js';
