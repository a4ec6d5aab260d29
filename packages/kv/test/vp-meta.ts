import type { MasterCommand } from '@cohort/vpaxos';
import { expect } from 'vitest';
import { type MetaState, applyMeta, emptyMeta } from '../src/meta/state.js';
import { VP_MASTER_SECTION, type VpMasterCommand, applyVpMaster } from '../src/vpaxos/master-extension.js';

/** The meta state's extensions: the configuration master's. */
export const EXT = new Map([[VP_MASTER_SECTION, applyVpMaster]]);

/** A founded cluster of 3 nodes: p0 raft on all three, p1 vpaxos on a and b. */
export function founded(): MetaState {
  const s = emptyMeta();
  const r = applyMeta(s, {
    type: 'bootstrap',
    clusterId: 'c',
    replicationFactor: 3,
    nodes: ['a', 'b', 'c'].map((id) => ({ id, peerAddress: `${id}:1`, tags: {}, startedAt: 0 })),
    partitions: [
      ['a', 'b', 'c'],
      ['a', 'b'],
    ],
    engines: ['raft', 'vpaxos'],
  });
  expect(r.ok).toBe(true);
  return s;
}

/** Applies a configuration master command to `s`, as the meta group does. */
export const run = (s: MetaState, command: VpMasterCommand) =>
  applyMeta(s, { type: 'extCommand', section: VP_MASTER_SECTION, command }, EXT);

/** Applies a command of the master proper for p1. */
export const master = (s: MetaState, command: MasterCommand) => run(s, { op: 'master', partition: 1, command });

/** Makes `ballot` of p1 active on `acceptors`, `primary` leading (`degraded`: a failover to fewer than f+1). */
export function activeOn(
  s: MetaState,
  ballot: number,
  primary: string,
  acceptors: string[],
  prevBallot: number,
  degraded = false,
): void {
  expect(
    master(s, {
      type: 'newBallot',
      group: 'p1',
      ballot,
      prevBallot,
      config: { primary, acceptors },
      ...(degraded ? { degraded: true } : {}),
    }).ok,
  ).toBe(true);
  expect(master(s, { type: 'complete', group: 'p1', ballot }).ok).toBe(true);
  expect(master(s, { type: 'activate', group: 'p1', ballot }).ok).toBe(true);
}
