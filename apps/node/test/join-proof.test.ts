import { describe, expect, it } from 'vitest';
import { joinProof, joinProofRefusal } from '../src/join-proof.js';
import type { JoinRequest } from '../src/meta-routes.js';

const enc = new TextEncoder();
const SECRET = enc.encode('/key/swarm/psk/1.0.0/\n/base16/\n'.padEnd(80, 'a'));
const OTHER = enc.encode('/key/swarm/psk/1.0.0/\n/base16/\n'.padEnd(80, 'b'));

function request(extra: Partial<JoinRequest> = {}): JoinRequest {
  return {
    id: 'n4',
    peerId: '12D3KooWAbcdefghijklmnopqrstuvwxyzABCDEFGHJKLMNPQRST',
    peerAddress: '127.0.0.1:7004',
    http: '127.0.0.1:8084',
    resp: '127.0.0.1:6384',
    tags: {},
    startedAt: 1,
    ...extra,
  };
}

describe('join proofs', () => {
  it('a proof made with the cluster secret is accepted', () => {
    const req = request();
    req.proof = joinProof(SECRET, req);
    expect(req.proof).toMatch(/^[0-9a-f]{64}$/);
    expect(joinProofRefusal(SECRET, req)).toBeUndefined();
  });

  it('a proof made with another secret, or none, is refused with what to fix', () => {
    const req = request();
    req.proof = joinProof(OTHER, req);
    expect(joinProofRefusal(SECRET, req)).toMatch(/another --cluster-secret-file/);
    expect(joinProofRefusal(SECRET, request())).toMatch(/requires its cluster secret/);
  });

  it('a proof binds the id, the peer id and the address: changing any one voids it', () => {
    const req = request();
    const proof = joinProof(SECRET, req);
    for (const change of [{ id: 'n5' }, { peerId: `${req.peerId}x` }, { peerAddress: '127.0.0.1:7005' }]) {
      expect(joinProofRefusal(SECRET, { ...req, ...change, proof })).toMatch(/does not prove the cluster secret/);
    }
  });

  it('a cluster without a secret admits joins without a proof, and refuses one that brings a secret', () => {
    expect(joinProofRefusal(undefined, request())).toBeUndefined();
    const req = request();
    req.proof = joinProof(SECRET, req);
    expect(joinProofRefusal(undefined, req)).toMatch(/runs without a cluster secret/);
  });
});
