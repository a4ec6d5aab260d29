import type { Entry } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type Cluster, cmd } from './cluster.js';
import { gated as gatedCluster, settled } from './gated-cluster.js';
import type { MapMachine } from './map-machine.js';

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

describe('a machine told of the entries it will apply', () => {
  it('hears of every entry, on the leader and on each follower, before it applies it', async () => {
    const c = gatedCluster();
    cluster = c;
    const leader = await settled(c);
    const seen = new Map<string, { told: Set<number>; appliedUntold: number[]; applied: number }>();
    let from = Number.POSITIVE_INFINITY;
    for (const id of c.ids) {
      const sm = c.node(id).sms.get('p0') as MapMachine & { prefetch?: (entries: readonly Entry[]) => void };
      const rec = { told: new Set<number>(), appliedUntold: [] as number[], applied: 0 };
      seen.set(id, rec);
      from = Math.min(from, c.node(id).host.status('p0').lastIndex + 1);
      sm.prefetch = (entries) => {
        for (const e of entries) rec.told.add(e.index);
      };
      const apply = sm.applyBatch.bind(sm);
      sm.applyBatch = (entries, confState) => {
        for (const e of entries) {
          if (e.index < from || e.data.length === 0) continue;
          rec.applied++;
          if (!rec.told.has(e.index)) rec.appliedUntold.push(e.index);
        }
        return apply(entries, confState);
      };
    }
    for (let wave = 0; wave < 5; wave++) {
      await Promise.all(Array.from({ length: 6 }, (_, i) => c.node(leader).host.propose('p0', cmd(`k${wave}-${i}=1`))));
    }
    const end = Date.now() + 5000;
    while ([...seen.values()].some((r) => r.applied < 30) && Date.now() < end)
      await new Promise((r) => setTimeout(r, 5));
    for (const [id, r] of seen) {
      expect(r.applied, `entries ${id} applied`).toBe(30);
      expect(r.appliedUntold, `entries ${id} applied without being told of them first`).toEqual([]);
    }
  });
});
