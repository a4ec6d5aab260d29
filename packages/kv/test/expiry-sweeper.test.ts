import { ErrorCode, type GroupRole, type ReplicatedGroup, systemClock } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { ExpirySweeper, type KvResponse } from '../src/index.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);

function group(role: () => GroupRole): ReplicatedGroup {
  return {
    id: 'p0',
    propose: () => Promise.reject(new Error('not used')),
    read: () => Promise.resolve(),
    status: () => ({
      group: 'p0',
      role: role(),
      term: 1,
      leader: role() === 'leader' ? 'a' : 'b',
      commit: 0,
      applied: 0,
    }),
  };
}

let sweeper: ExpirySweeper | undefined;
afterEach(() => sweeper?.stop());

describe('ExpirySweeper', () => {
  it('on the leader, proposes bounded batches of expired keys until none is left', async () => {
    const expired = Array.from({ length: 10 }, (_, i) => b(`k${i}`));
    const batches: number[] = [];
    const asked: number[] = [];
    sweeper = new ExpirySweeper({
      group: group(() => 'leader'),
      clock: systemClock,
      wallClock: () => 1_000,
      batchSize: 4,
      intervalMs: 5,
      expiredKeys: (now, limit) => {
        asked.push(now);
        return expired.slice(0, limit);
      },
      deleteExpired: async (keys): Promise<KvResponse> => {
        batches.push(keys.length);
        expired.splice(0, keys.length);
        return { type: 'int', value: BigInt(keys.length) };
      },
    });
    sweeper.start();
    const deadline = Date.now() + 2000;
    while (expired.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(batches).toEqual([4, 4, 2]);
    expect(asked.every((t) => t === 1_000)).toBe(true);
    expect(sweeper.stats).toEqual({ proposals: 3, keys: 10, failures: 0 });
  });

  it('does nothing on a follower, and counts a failed proposal for a later sweep to retry', async () => {
    let role: GroupRole = 'follower';
    let proposed = 0;
    sweeper = new ExpirySweeper({
      group: group(() => role),
      clock: systemClock,
      expiredKeys: () => [b('gone')],
      deleteExpired: async (): Promise<KvResponse> => {
        proposed++;
        return { type: 'failure', code: ErrorCode.NotLeader, message: 'lost leadership' };
      },
    });
    expect(await sweeper.sweep()).toBe(0);
    expect(proposed).toBe(0);
    role = 'leader';
    expect(await sweeper.sweep()).toBe(0);
    expect(sweeper.stats).toEqual({ proposals: 1, keys: 1, failures: 1 });
  });
});
