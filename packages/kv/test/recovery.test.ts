import { describe, expect, it } from 'vitest';
import { type MetaState, applyMeta, emptyMeta } from '../src/meta/state.js';
import type { Liveness } from '../src/placement/controller.js';
import { type ReplicaPosition, planRecovery } from '../src/placement/recovery.js';

/** Partition 0 on n1, n2, n3 (raft); partition 1 on n1, n2 (vpaxos). */
function state(): MetaState {
  const s = emptyMeta();
  applyMeta(s, {
    type: 'bootstrap',
    clusterId: 'c1',
    replicationFactor: 3,
    nodes: ['n1', 'n2', 'n3', 'n4'].map((id, i) => ({
      id,
      peerAddress: `127.0.0.1:${7000 + i}`,
      tags: {},
      startedAt: i,
    })),
    partitions: [
      ['n1', 'n2', 'n3'],
      ['n1', 'n2'],
    ],
    engines: ['raft', 'vpaxos'],
  });
  return s;
}

const at = (node: string, lastIndex: number, applied: number, commit = applied): ReplicaPosition => ({
  node,
  lastIndex,
  applied,
  commit,
  term: 4,
});
/** Alive: `ids`; suspect: `suspects`; everyone else dead. */
const only =
  (...ids: string[]) =>
  (id: string): Liveness =>
    ids.includes(id) ? 'alive' : suspects.has(id) ? 'suspect' : 'dead';
const suspects = new Set<string>();

describe('planRecovery (unsafe recovery of a partition that lost its quorum)', () => {
  it('rebuilds from the live replica with the longest log, then the most applied, and names what is lost', () => {
    const s = state();
    // Two voters of three dead: n3 alone is live. n4 answers but holds no replica.
    const d = planRecovery(s, 0, [at('n3', 40, 38, 35), at('n4', 90, 90)], only('n3', 'n4'));
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.plan.survivor.node).toBe('n3');
    expect(d.plan.lost).toEqual(['n1', 'n2']);
    expect(d.plan.epoch).toBe(1);
    expect(d.plan.dataLoss).toMatch(/n1, n2\) acknowledged after index 40 of n3's log may be gone/);
    expect(d.plan.dataLoss).toMatch(/entries 36\.\.40, not known committed, become committed/);
    // Of five voters with two live: the longer log wins, then the most applied.
    const s5 = state();
    s5.partitions[0]!.replicas = ['n1', 'n2', 'n3', 'n4', 'n5'].map((node) => ({ node, role: 'voter' as const }));
    const two = planRecovery(s5, 0, [at('n1', 30, 30), at('n2', 31, 20)], only('n1', 'n2'));
    expect(two.ok && two.plan.survivor.node).toBe('n2');
    const tie = planRecovery(s5, 0, [at('n1', 31, 25), at('n2', 31, 20)], only('n1', 'n2'));
    expect(tie.ok && tie.plan.survivor.node).toBe('n1');
  });

  it('takes the survivor an operator names when it is a live replica', () => {
    const s = state();
    s.partitions[0]!.replicas = ['n1', 'n2', 'n3', 'n4', 'n5'].map((node) => ({ node, role: 'voter' as const }));
    const d = planRecovery(s, 0, [at('n1', 30, 30), at('n2', 31, 31)], only('n1', 'n2'), 'n1');
    expect(d.ok && d.plan.survivor.node).toBe('n1');
  });

  it('is refused while a quorum of voters is not known dead or a replica knows a leader, for a dead or unknown survivor, for vpaxos, and without any survivor', () => {
    const s = state();
    const quorum = planRecovery(s, 0, [at('n1', 9, 9), at('n2', 9, 9)], only('n1', 'n2'));
    expect(quorum).toMatchObject({ ok: false, code: 'QUORUM_ALIVE' });
    expect(!quorum.ok && quorum.reason).toMatch(
      /still has a quorum of voters not known dead \(n1, n2 of n1, n2, n3; a quorum needs 2\)/,
    );
    // A suspect voter may come back and lead with the one alive: not lost yet.
    suspects.add('n2');
    const suspect = planRecovery(s, 0, [at('n1', 9, 9)], only('n1'));
    suspects.clear();
    expect(!suspect.ok && suspect.reason).toMatch(/a quorum needs 2; suspect: n2\)/);
    // A live replica that still hears from a leader: not lost.
    const led = planRecovery(s, 0, [{ ...at('n3', 9, 9), leader: 'n1' }], only('n3'));
    expect(led).toMatchObject({ ok: false, code: 'LEADER_KNOWN' });
    expect(planRecovery(s, 0, [at('n3', 9, 9)], only('n3'), 'n1')).toMatchObject({
      ok: false,
      code: 'SURVIVOR_NOT_LIVE',
    });
    expect(planRecovery(s, 0, [at('n3', 9, 9)], only('n3'), 'n4')).toMatchObject({
      ok: false,
      code: 'SURVIVOR_NOT_LIVE',
    });
    expect(planRecovery(s, 0, [], only('n3'))).toMatchObject({ ok: false, code: 'NO_SURVIVOR' });
    expect(planRecovery(s, 1, [at('n1', 9, 9)], only('n1'))).toMatchObject({ ok: false, code: 'VPAXOS_PARTITION' });
    expect(planRecovery(s, 7, [], only())).toMatchObject({ ok: false, code: 'NO_PARTITION' });
  });
});
