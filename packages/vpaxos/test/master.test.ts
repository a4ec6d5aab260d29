import { describe, expect, it } from 'vitest';
import { ConfigMaster } from '../src/master.js';

const G = 'p1';

function started(m: ConfigMaster): void {
  expect(
    m.apply({ type: 'newBallot', group: G, ballot: 1, prevBallot: 0, config: { primary: 'a', acceptors: ['a', 'b'] } })
      .ok,
  ).toBe(true);
  expect(m.apply({ type: 'complete', group: G, ballot: 1 }).ok).toBe(true);
  expect(m.apply({ type: 'activate', group: G, ballot: 1 }).ok).toBe(true);
}

describe('configuration master', () => {
  it('newBallot: a configuration with fewer than f+1 replicas is refused with the reason', () => {
    const m = new ConfigMaster({ f: 1 });
    const r = m.apply({
      type: 'newBallot',
      group: G,
      ballot: 1,
      prevBallot: 0,
      config: { primary: 'a', acceptors: ['a'] },
    });
    expect(r).toEqual({ ok: false, reason: expect.stringContaining('needs at least 2') });
    expect(m.state(G).next).toBeUndefined();
  });

  it('newBallot: the primary must be an acceptor, ballots only grow, the previous ballot must be the active one', () => {
    const m = new ConfigMaster({ f: 1 });
    expect(
      m.apply({
        type: 'newBallot',
        group: G,
        ballot: 1,
        prevBallot: 0,
        config: { primary: 'c', acceptors: ['a', 'b'] },
      }).ok,
    ).toBe(false);
    started(m);
    expect(
      m.apply({
        type: 'newBallot',
        group: G,
        ballot: 1,
        prevBallot: 1,
        config: { primary: 'a', acceptors: ['a', 'b'] },
      }).ok,
    ).toBe(false);
    const r = m.apply({
      type: 'newBallot',
      group: G,
      ballot: 3,
      prevBallot: 0,
      config: { primary: 'a', acceptors: ['a', 'b'] },
    });
    expect(r).toEqual({ ok: false, reason: expect.stringContaining('not the active ballot 1') });
  });

  it('complete: refused for a ballot that is not the next ballot', () => {
    const m = new ConfigMaster({ f: 1 });
    started(m);
    expect(
      m.apply({
        type: 'newBallot',
        group: G,
        ballot: 2,
        prevBallot: 1,
        config: { primary: 'b', acceptors: ['b', 'c'] },
      }).ok,
    ).toBe(true);
    expect(
      m.apply({
        type: 'newBallot',
        group: G,
        ballot: 3,
        prevBallot: 1,
        config: { primary: 'c', acceptors: ['c', 'b'] },
      }).ok,
    ).toBe(true);
    const r = m.apply({ type: 'complete', group: G, ballot: 2 });
    expect(r).toEqual({ ok: false, reason: expect.stringContaining('the next ballot is 3') });
  });

  it('activation: only a completed next ballot is activated; an abandoned ballot never becomes active', () => {
    const m = new ConfigMaster({ f: 1 });
    started(m);
    m.apply({ type: 'newBallot', group: G, ballot: 2, prevBallot: 1, config: { primary: 'b', acceptors: ['b', 'c'] } });
    expect(m.apply({ type: 'activate', group: G, ballot: 2 }).ok).toBe(false);
    // Ballot 2 is abandoned for 3; its previous ballot is still 1, the active one.
    m.apply({ type: 'newBallot', group: G, ballot: 3, prevBallot: 1, config: { primary: 'c', acceptors: ['c', 'd'] } });
    m.apply({ type: 'complete', group: G, ballot: 3 });
    expect(m.apply({ type: 'activate', group: G, ballot: 2 }).ok).toBe(false);
    expect(m.apply({ type: 'activate', group: G, ballot: 3 })).toEqual({
      ok: true,
      type: 'activate',
      config: { ballot: 3, primary: 'c', acceptors: ['c', 'd'] },
    });
    expect(m.isActivePrimary(G, 'c')).toBe(true);
    expect(m.isActivePrimary(G, 'a')).toBe(false);
  });

  it('leases: the master waits lease + max drift after complete before activating a new primary', () => {
    const m = new ConfigMaster({ f: 1, leaseMs: 400, maxDriftMs: 40 });
    const first = m.apply({
      type: 'newBallot',
      group: G,
      ballot: 1,
      prevBallot: 0,
      config: { primary: 'a', acceptors: ['a', 'b'] },
    });
    expect(first.ok).toBe(true);
    // No previous primary: nothing to wait for.
    expect(m.apply({ type: 'complete', group: G, ballot: 1 })).toEqual({
      ok: true,
      type: 'complete',
      activateAfterMs: 0,
    });
    m.apply({ type: 'activate', group: G, ballot: 1 });
    m.apply({ type: 'newBallot', group: G, ballot: 2, prevBallot: 1, config: { primary: 'b', acceptors: ['b', 'c'] } });
    expect(m.apply({ type: 'complete', group: G, ballot: 2 })).toEqual({
      ok: true,
      type: 'complete',
      activateAfterMs: 440,
    });
  });

  it('leases: an activation that did not wait out the previous primary lease is refused with the reason', () => {
    const m = new ConfigMaster({ f: 1, leaseMs: 400, maxDriftMs: 40 });
    started(m);
    m.apply({ type: 'newBallot', group: G, ballot: 2, prevBallot: 1, config: { primary: 'b', acceptors: ['b', 'c'] } });
    m.apply({ type: 'complete', group: G, ballot: 2 });
    const early = m.apply({ type: 'activate', group: G, ballot: 2, waitedMs: 439 });
    expect(early).toEqual({ ok: false, reason: expect.stringContaining('needs 440 ms') });
    expect(m.isActivePrimary(G, 'a')).toBe(true);
    expect(m.apply({ type: 'activate', group: G, ballot: 2, waitedMs: 440 }).ok).toBe(true);
    expect(m.isActivePrimary(G, 'b')).toBe(true);
  });

  it('leases: the wait is recorded with the completed ballot, so a master restored from its state waits it too', () => {
    const m = new ConfigMaster({ f: 1, leaseMs: 400, maxDriftMs: 40 });
    started(m);
    m.apply({ type: 'newBallot', group: G, ballot: 2, prevBallot: 1, config: { primary: 'b', acceptors: ['b', 'c'] } });
    m.apply({ type: 'complete', group: G, ballot: 2 });
    // A master without lease options (a meta replica applying the log) still holds the grant and the wait.
    const restored = ConfigMaster.restore({ f: 1 }, JSON.parse(JSON.stringify(m.export())));
    expect(restored.state(G).next?.activateAfterMs).toBe(440);
    expect(restored.state(G).lease).toEqual({ ms: 400, maxDriftMs: 40 });
    expect(restored.apply({ type: 'activate', group: G, ballot: 2 }).ok).toBe(false);
    expect(restored.apply({ type: 'activate', group: G, ballot: 2, waitedMs: 500 }).ok).toBe(true);
  });

  it('leases: the activation records the lease it grants; a ballot keeping the same primary needs no wait', () => {
    const m = new ConfigMaster({ f: 1 });
    m.apply({ type: 'newBallot', group: G, ballot: 1, prevBallot: 0, config: { primary: 'a', acceptors: ['a', 'b'] } });
    m.apply({ type: 'complete', group: G, ballot: 1 });
    const granted = m.apply({ type: 'activate', group: G, ballot: 1, lease: { ms: 300, maxDriftMs: 30 } });
    expect(granted).toMatchObject({ ok: true, type: 'activate', lease: { ms: 300, maxDriftMs: 30 } });
    // A reconfiguration that keeps primary a: a's own lease cannot conflict with itself.
    m.apply({ type: 'newBallot', group: G, ballot: 2, prevBallot: 1, config: { primary: 'a', acceptors: ['a', 'c'] } });
    expect(m.apply({ type: 'complete', group: G, ballot: 2 })).toMatchObject({ activateAfterMs: 0 });
    // Activated without a grant: no lease, so the next primary change waits nothing.
    expect(m.apply({ type: 'activate', group: G, ballot: 2 })).toMatchObject({ ok: true, lease: undefined });
    m.apply({ type: 'newBallot', group: G, ballot: 3, prevBallot: 2, config: { primary: 'c', acceptors: ['c', 'a'] } });
    expect(m.apply({ type: 'complete', group: G, ballot: 3 })).toMatchObject({ activateAfterMs: 0 });
  });

  it('leases: a primary change after a granted lease waits lease + drift, whatever the master options are', () => {
    const m = new ConfigMaster({ f: 1 });
    m.apply({ type: 'newBallot', group: G, ballot: 1, prevBallot: 0, config: { primary: 'a', acceptors: ['a', 'b'] } });
    m.apply({ type: 'complete', group: G, ballot: 1 });
    m.apply({ type: 'activate', group: G, ballot: 1, lease: { ms: 300, maxDriftMs: 30 } });
    m.apply({
      type: 'newBallot',
      group: G,
      ballot: 2,
      prevBallot: 1,
      config: { primary: 'b', acceptors: ['b'] },
      degraded: true,
    });
    expect(m.apply({ type: 'complete', group: G, ballot: 2 })).toMatchObject({ activateAfterMs: 330 });
  });

  it('newBallot degraded: the survivors of the active configuration alone may run on fewer than f+1 replicas', () => {
    const m = new ConfigMaster({ f: 1 });
    started(m);
    const nb = (ballot: number, acceptors: string[], degraded = true) =>
      m.apply({
        type: 'newBallot',
        group: G,
        ballot,
        prevBallot: 1,
        config: { primary: acceptors[0]!, acceptors },
        degraded,
      });
    // A newcomer is no survivor: a degraded ballot holds nothing but the active configuration's acceptors.
    expect(nb(2, ['c'])).toEqual({ ok: false, reason: expect.stringContaining('c is not one') });
    // Without the flag the f+1 rule holds.
    expect(nb(2, ['b'], false)).toEqual({ ok: false, reason: expect.stringContaining('needs at least 2') });
    expect(nb(2, ['b']).ok).toBe(true);
    expect(m.state(G).next).toMatchObject({ ballot: 2, primary: 'b', acceptors: ['b'] });
  });

  it('newBallot degraded: refused while no configuration was ever active', () => {
    const m = new ConfigMaster({ f: 1 });
    const r = m.apply({
      type: 'newBallot',
      group: G,
      ballot: 1,
      prevBallot: 0,
      config: { primary: 'a', acceptors: ['a'] },
      degraded: true,
    });
    expect(r.ok).toBe(false);
  });

  it('export and restore: a restored master refuses and accepts exactly as the one it was taken from', () => {
    const m = new ConfigMaster({ f: 1 });
    started(m);
    m.apply({ type: 'newBallot', group: G, ballot: 2, prevBallot: 1, config: { primary: 'b', acceptors: ['b', 'c'] } });
    const r = ConfigMaster.restore({ f: 1 }, JSON.parse(JSON.stringify(m.export())));
    expect(r.state(G)).toEqual(m.state(G));
    expect(r.apply({ type: 'complete', group: G, ballot: 3 }).ok).toBe(false);
    expect(r.apply({ type: 'complete', group: G, ballot: 2 }).ok).toBe(true);
  });
});
