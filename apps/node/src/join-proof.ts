import { createHmac, timingSafeEqual } from 'node:crypto';
import type { JoinRequest } from './meta-routes.js';

/** What a join proof covers: who joins, with which libp2p identity, reachable where. */
type Proven = Pick<JoinRequest, 'id' | 'peerId' | 'peerAddress'>;

/**
 * The proof a joining node presents that it holds the cluster secret: an
 * HMAC-SHA256, keyed by a key derived from the secret, over its node id, its
 * libp2p peer id and its peer address. A member that holds the same secret
 * checks it before registering the node, so the registry pins only identities
 * vouched for by a holder of the secret. A replayed proof can register nothing
 * but that same peer id, whose private key the replayer does not have.
 */
export function joinProof(secret: Uint8Array, req: Proven): string {
  const key = createHmac('sha256', secret).update('cohort join proof 1').digest();
  return createHmac('sha256', key).update(`${req.id}\n${req.peerId}\n${req.peerAddress}`).digest('hex');
}

/**
 * Why a member holding `secret` (or none) must refuse the join `req`, if it
 * must: a proof that is missing or wrong, or a proof where the cluster has no
 * secret (the two sides are configured differently; their peers could not connect).
 */
export function joinProofRefusal(secret: Uint8Array | undefined, req: JoinRequest): string | undefined {
  if (secret === undefined) {
    return req.proof === undefined
      ? undefined
      : 'this cluster runs without a cluster secret, but the joining node was given one: start it without --cluster-secret-file, or give every member the same secret';
  }
  if (req.proof === undefined) {
    return 'this cluster requires its cluster secret: start the joining node with the same --cluster-secret-file as the members';
  }
  const want = Buffer.from(joinProof(secret, req), 'hex');
  const got = Buffer.from(req.proof, 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    return 'the join does not prove the cluster secret: the joining node was given another --cluster-secret-file than the members';
  }
  return undefined;
}
