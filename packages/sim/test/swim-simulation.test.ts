import { describe, expect, it } from 'vitest';
import { detection, massFailure, partition, stability } from '../src/swim/scenarios.js';
import { median } from '../src/swim/stats.js';
import { SwimCluster } from '../src/swim/swim-cluster.js';

describe('SWIM simulation', () => {
  it('10 members: median first detection within 2 protocol periods, every member learns of each crash', () => {
    const seed = 101;
    const r = detection(10, seed, 1);
    const more = [102, 103, 104, 105, 106, 107].map((s) => detection(10, s, 1));
    const first = [r, ...more].flatMap((x) => x.firstDetection);
    const incomplete = [r, ...more].reduce((n, x) => n + x.incomplete, 0);
    expect(incomplete, `seeds 101-107: ${JSON.stringify(first)}`).toBe(0);
    expect(median(first), `seeds 101-107: ${JSON.stringify(first)}`).toBeLessThanOrEqual(2);
    expect(Math.max(...first), 'seeds 101-107').toBeLessThan(6);
  });

  it('50 members: crashes are detected and disseminated to all', () => {
    const seed = 201;
    const r = detection(50, seed, 2);
    expect(r.incomplete, `seed ${seed}`).toBe(0);
    expect(
      r.allSuspect.every((t) => t < 6),
      `seed ${seed}: ${JSON.stringify(r)}`,
    ).toBe(true);
    expect(
      r.allDead.every((t) => t < 60),
      `seed ${seed}: ${JSON.stringify(r)}`,
    ).toBe(true);
  });

  it('no false dead declaration of a live member at 20% message loss (10 members, 10 simulated minutes)', () => {
    for (const seed of [301, 302]) {
      const r = stability(10, seed, 600_000, { dropRate: 0.2 });
      expect(r.falseDead, `seed ${seed}: ${JSON.stringify(r)}`).toBe(0);
      expect(r.falseSuspicionsPerMemberHour, `seed ${seed}`).toBeGreaterThan(0);
    }
  });

  it('no false dead at 20% loss when dissemination is the bottleneck (100 members, 2 updates per message, 60 s)', () => {
    // A scale model of 500 members under loss: accusations outnumber the piggyback slots, so refutations must go first.
    const seed = 3;
    const r = stability(100, seed, 60_000, { dropRate: 0.2, config: { maxGossipPerMessage: 2 } });
    expect(r.falseSuspicionsPerMemberHour, `seed ${seed}`).toBeGreaterThan(0);
    expect(r.falseDead, `seed ${seed}: ${JSON.stringify(r)}`).toBe(0);
  });

  it('a falsely accused member refutes with a higher incarnation and is never declared dead', () => {
    const seed = 401;
    const c = new SwimCluster({ size: 10, seed });
    c.run(5000);
    let dead = 0;
    c.onChange((o) => {
      if (o.change.to === 'dead') dead += 1;
    });
    const accuser = c.swim('m1');
    const target = accuser.member('m7')!;
    accuser.step('m2', { type: 'gossip', gossip: [{ ...target, state: 'suspect', by: 'm2' }] }, c.now);
    const refuted = c.run(30_000, () => c.liveIds().every((id) => (c.swim(id).member('m7')?.incarnation ?? 0) > 0));
    expect(refuted, `seed ${seed}`).toBe(true);
    c.run(60_000);
    expect(dead, `seed ${seed}`).toBe(0);
    expect(
      c.liveIds().every((id) => c.stateOf(id, 'm7') === 'alive'),
      `seed ${seed}`,
    ).toBe(true);
  });

  it('a 3-2 partition of 5 is detected on both sides (minority flagged) and merges after healing', () => {
    const seed = 501;
    const r = partition(seed);
    expect(Number.isNaN(r.splitDetected), `seed ${seed}`).toBe(false);
    expect(r.minorityStatus, `seed ${seed}`).toMatchObject({ kind: 'partitioned', minority: true });
    expect(r.majorityStatus.kind, `seed ${seed}`).toBe('healthy');
    expect(Number.isNaN(r.healed), `seed ${seed}: ${JSON.stringify(r)}`).toBe(false);
  });

  it('3 of 5 failing at once: survivors declare all three dead and see a minority partition', () => {
    const seed = 601;
    const r = massFailure(seed);
    expect(Number.isNaN(r.allDead), `seed ${seed}`).toBe(false);
    expect(r.finalStatus, `seed ${seed}`).toMatchObject({
      kind: 'partitioned',
      reachable: 2,
      expected: 5,
      minority: true,
    });
  });

  it('replays exactly from its seed', () => {
    const a = detection(10, 701, 2);
    const b = detection(10, 701, 2);
    expect(b).toEqual(a);
  });
});
