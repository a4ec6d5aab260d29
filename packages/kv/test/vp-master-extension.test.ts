import { describe, expect, it } from 'vitest';
import type { MetaState } from '../src/meta/state.js';
import { masterSection, vpaxosReplicas } from '../src/vpaxos/master-extension.js';
import { activeOn, founded, master, run } from './vp-meta.js';

describe('the configuration master on the meta group', () => {
  it('leases: the lease granted with an activation and the wait a completion needs are in the meta log; an activation that waited less is refused', () => {
    const s = founded();
    expect(
      master(s, {
        type: 'newBallot',
        group: 'p1',
        ballot: 1,
        prevBallot: 0,
        config: { primary: 'a', acceptors: ['a', 'b'] },
      }).ok,
    ).toBe(true);
    expect(master(s, { type: 'complete', group: 'p1', ballot: 1 }).ok).toBe(true);
    const lease = { ms: 1000, maxDriftMs: 100 };
    expect(master(s, { type: 'activate', group: 'p1', ballot: 1, lease }).ok).toBe(true);
    expect(masterSection(s).groups.p1?.lease).toEqual(lease);
    // b takes over from a: the completion records a's lease + drift, which any meta leader must wait out.
    expect(
      master(s, {
        type: 'newBallot',
        group: 'p1',
        ballot: 2,
        prevBallot: 1,
        config: { primary: 'b', acceptors: ['b'] },
        degraded: true,
      }).ok,
    ).toBe(true);
    expect(master(s, { type: 'complete', group: 'p1', ballot: 2 }).ok).toBe(true);
    const replica = JSON.parse(JSON.stringify(s)) as MetaState;
    expect(masterSection(replica).groups.p1?.next?.activateAfterMs).toBe(1100);
    const early = master(replica, { type: 'activate', group: 'p1', ballot: 2, waitedMs: 1000, lease });
    expect(early).toEqual({ ok: false, reason: expect.stringContaining('needs 1100 ms') });
    expect(replica.partitions[1]?.leader).toBe('a');
    expect(master(replica, { type: 'activate', group: 'p1', ballot: 2, waitedMs: 1100, lease }).ok).toBe(true);
    expect(replica.partitions[1]?.leader).toBe('b');
  });

  it('a vpaxos partition has f+1 replicas for the f failures of a raft partition of 2f+1', () => {
    expect([1, 2, 3, 4, 5].map(vpaxosReplicas)).toEqual([1, 1, 2, 2, 3]);
  });

  it('an activation makes the configuration the partition map entry: voters, primary as leader, a new epoch', () => {
    const s = founded();
    activeOn(s, 1, 'a', ['a', 'b'], 0);
    expect(s.partitions[1]).toMatchObject({
      engine: 'vpaxos',
      leader: 'a',
      replicas: [
        { node: 'a', role: 'voter' },
        { node: 'b', role: 'voter' },
      ],
    });
    expect(masterSection(s).groups.p1?.active?.ballot).toBe(1);
    expect(masterSection(s).health.p1?.underReplicated).toBe(false);
  });

  it('a complete for a ballot that is not the next ballot is refused and changes nothing', () => {
    const s = founded();
    activeOn(s, 1, 'a', ['a', 'b'], 0);
    const before = JSON.stringify(s);
    expect(master(s, { type: 'complete', group: 'p1', ballot: 1 })).toEqual({
      ok: false,
      reason: expect.stringContaining('the next ballot is none'),
    });
    expect(master(s, { type: 'complete', group: 'p1', ballot: 7 }).ok).toBe(false);
    expect(JSON.stringify(s)).toBe(before);
  });

  it('a configuration with fewer than f+1 replicas is refused with the reason', () => {
    const s = founded();
    activeOn(s, 1, 'a', ['a', 'b'], 0);
    const r = master(s, {
      type: 'newBallot',
      group: 'p1',
      ballot: 2,
      prevBallot: 1,
      config: { primary: 'c', acceptors: ['c'] },
    });
    expect(r).toEqual({ ok: false, reason: expect.stringContaining('tolerating f=1 failure(s) needs at least 2') });
  });

  it('a failover to the lone survivor runs under-replicated; the replacement is a learner until activated', () => {
    const s = founded();
    activeOn(s, 1, 'a', ['a', 'b'], 0);
    expect(run(s, { op: 'reportFailure', partition: 1, failure: { node: 'a', ballot: 1, reason: 'test' } }).ok).toBe(
      true,
    );
    expect(masterSection(s).health.p1?.failures).toEqual([{ node: 'a', ballot: 1, reason: 'test' }]);
    expect(
      master(s, {
        type: 'newBallot',
        group: 'p1',
        ballot: 2,
        prevBallot: 1,
        config: { primary: 'b', acceptors: ['b'] },
        degraded: true,
      }).ok,
    ).toBe(true);
    expect(master(s, { type: 'complete', group: 'p1', ballot: 2 }).ok).toBe(true);
    expect(master(s, { type: 'activate', group: 'p1', ballot: 2 }).ok).toBe(true);
    expect(s.partitions[1]).toMatchObject({ leader: 'b', replicas: [{ node: 'b', role: 'voter' }] });
    expect(masterSection(s).health.p1).toEqual({ underReplicated: true, failures: [] });
    const epoch = s.partitions[1]!.epoch;
    expect(
      master(s, {
        type: 'newBallot',
        group: 'p1',
        ballot: 3,
        prevBallot: 2,
        config: { primary: 'b', acceptors: ['b', 'c'] },
      }).ok,
    ).toBe(true);
    // The replacement's node starts a replica as soon as the map lists it; it votes once the ballot is active.
    expect(s.partitions[1]!.replicas).toEqual([
      { node: 'b', role: 'voter' },
      { node: 'c', role: 'learner' },
    ]);
    expect(s.partitions[1]!.epoch).toBe(epoch + 1);
    expect(master(s, { type: 'complete', group: 'p1', ballot: 3 }).ok).toBe(true);
    expect(master(s, { type: 'activate', group: 'p1', ballot: 3 }).ok).toBe(true);
    expect(masterSection(s).health.p1?.underReplicated).toBe(false);
  });

  it('refuses master commands for a raft partition, and a failure report of a node outside the active ballot', () => {
    const s = founded();
    expect(
      run(s, {
        op: 'master',
        partition: 0,
        command: { type: 'complete', group: 'p0', ballot: 1 },
      }),
    ).toEqual({ ok: false, reason: 'partition 0 is not replicated by Vertical Paxos' });
    activeOn(s, 1, 'a', ['a', 'b'], 0);
    expect(run(s, { op: 'reportFailure', partition: 1, failure: { node: 'c', ballot: 1, reason: 'x' } }).ok).toBe(
      false,
    );
  });
});
