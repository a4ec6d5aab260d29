import { CodecError, type NodeId, type Transport, systemClock } from '@cohort/core';
import { MemoryHub } from '@cohort/core/testing';
import { describe, expect, it } from 'vitest';
import {
  ConsistencyChecker,
  type ConsistencyCheckerOptions,
  type DigestSource,
  decodeDigestRequest,
  decodeDigestResponse,
  encodeDigestRequest,
  encodeDigestResponse,
} from '../src/index.js';

const IDS = ['a', 'b', 'c'];

/** Three checkers over one hub, each with what `local(id)` says of its replica, the options in `opts`, and its transport passed through `wrap`. */
function checkers(
  local: (id: NodeId) => DigestSource,
  opts: Omit<Partial<ConsistencyCheckerOptions>, 'transport'> & { wrap?: (base: Transport) => Transport } = {},
): ConsistencyChecker[] {
  const hub = new MemoryHub();
  const { wrap = (t) => t, ...rest } = opts;
  return IDS.map((id) => {
    const c = new ConsistencyChecker({
      group: 'p0',
      transport: wrap(hub.transport(id)),
      clock: systemClock,
      replicas: () => IDS,
      waitMs: 200,
      local: local(id),
      proposeChecksum: async () => 7,
      ...rest,
    });
    c.start();
    return c;
  });
}

/** Three checkers; `digests[node]` is what that replica recorded at index 7. */
function cluster(digests: Record<NodeId, string | undefined>, applied: Record<NodeId, number> = {}) {
  return {
    checkers: checkers((id) => ({
      appliedIndex: () => applied[id] ?? 7,
      digestAt: (i) => (i === 7 ? digests[id] : undefined),
    })),
  };
}

describe('ConsistencyChecker', () => {
  it('reports every replica digest at the checksum index, consistent when they agree', async () => {
    const { checkers } = cluster({ a: 'aa01', b: 'aa01', c: 'aa01' });
    const report = await checkers[1]!.check();
    expect(report).toMatchObject({ group: 'p0', index: 7, verdict: 'consistent', keyRange: { start: '', end: '' } });
    expect(report.replicas).toEqual(IDS.map((node) => ({ node, digest: 'aa01' })));
    expect(checkers[1]!.mismatches).toBe(0);
  });

  it('calls a difference inconsistent and counts it; a replica without an answer makes the check incomplete', async () => {
    const { checkers } = cluster({ a: 'aa01', b: 'aa01', c: 'bb02' });
    const bad = await checkers[0]!.check();
    expect(bad.verdict).toBe('inconsistent');
    expect(checkers[0]!.mismatches).toBe(1);
    expect(checkers[0]!.lastMismatch?.index).toBe(7);

    const { checkers: lagging } = cluster({ a: 'aa01', b: 'aa01', c: 'aa01' }, { c: 3 });
    const report = await lagging[0]!.check();
    expect(report.verdict).toBe('incomplete');
    expect(report.replicas[2]).toEqual({ node: 'c', digest: null, error: 'applied only up to 3 of 7' });
  });

  it('refuses frames of another wire version or a malformed length', () => {
    const req = encodeDigestRequest('p0', 42, 1000);
    expect(decodeDigestRequest(req)).toEqual({ group: 'p0', index: 42, waitMs: 1000 });
    const v2 = Uint8Array.from(req);
    v2[0] = 2;
    expect(() => decodeDigestRequest(v2)).toThrow(CodecError);
    expect(() => decodeDigestRequest(req.subarray(0, 5))).toThrow(/malformed/);
    expect(decodeDigestResponse(encodeDigestResponse(undefined, 'no digest'))).toEqual({ error: 'no digest' });
    expect(decodeDigestResponse(encodeDigestResponse(undefined, 'hashing', true))).toEqual({
      error: 'hashing',
      notYet: true,
    });
  });

  it('asks a replica again while its digest is still being computed, past any one request timeout', async () => {
    /**
     * Replica c hashes for 600 ms from the first request it gets (not from the test's start: on a loaded
     * machine the checkers' setup alone once took that long); every request ends after 150 ms, as the
     * transport's timeout ends one.
     */
    let started: number | undefined;
    const ready = (id: NodeId): boolean => id !== 'c' || (started !== undefined && Date.now() - started >= 600);
    let asked = 0;
    const all = checkers(
      (id) => ({
        appliedIndex: () => 7,
        digestPending: () => !ready(id),
        digestAt: (i) => (i === 7 && ready(id) ? 'aa01' : undefined),
      }),
      {
        waitMs: 10_000,
        requestWaitMs: 50,
        wrap: (base) =>
          Object.assign(Object.create(base) as typeof base, {
            request: (to: NodeId, protocol: string, frame: Uint8Array) => {
              if (to === 'c') {
                asked++;
                started ??= Date.now();
              }
              return Promise.race([
                base.request(to, protocol, frame),
                new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no response in 150 ms')), 150)),
              ]);
            },
          }),
      },
    );
    const report = await all[0]!.check();
    expect(report.verdict).toBe('consistent');
    expect(report.replicas.map((r) => r.digest)).toEqual(['aa01', 'aa01', 'aa01']);
    expect(asked).toBeGreaterThan(1);
  });

  it('says why a replica has no digest when computing it failed there', async () => {
    const all = checkers((id) => ({
      appliedIndex: () => 7,
      digestAt: (i) => (i === 7 && id !== 'b' ? 'aa01' : undefined),
      digestFailure: (i) => (i === 7 && id === 'b' ? 'the writer stopped waiting for this reader' : undefined),
    }));
    const report = await all[0]!.check();
    expect(report.verdict).toBe('incomplete');
    expect(report.replicas[1]).toEqual({
      node: 'b',
      digest: null,
      error: 'digest at 7 failed: the writer stopped waiting for this reader',
    });
  });
});
