import type { KvClientRequest, KvResponse } from '@cohort/kv';
import { describe, expect, it } from 'vitest';
import type { KvApi, ReadApi } from '../src/kv-api.js';
import { type ReadMode, executeWithModes, readModeOf } from '../src/resp/read-modes.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const get = (k: string): KvClientRequest => ({ kind: 'read', op: 'get', keys: [enc(k)] });
const set = (k: string): KvClientRequest => ({
  kind: 'write',
  write: { op: 'set', key: enc(k), value: enc('v'), condition: 'always', expiry: { kind: 'none' }, returnOld: false },
});
const bulk = (s: string): KvResponse => ({ type: 'bulk', value: enc(s) });
const key = (r: KvClientRequest): string => (r.kind === 'read' ? Buffer.from(r.keys[0]!).toString() : 'w');

/** A node whose every path logs what it served, in the order served. */
function node(leaseHolds: boolean, role = 'leader') {
  const log: string[] = [];
  const api = {
    status: () => ({ role }),
    executeAll: async (reqs: KvClientRequest[]) => {
      await new Promise((r) => setTimeout(r, 5));
      log.push(`linearizable ${reqs.map(key).join(',')}`);
      return reqs.map((r) => (r.kind === 'read' ? bulk(`linearizable ${key(r)}`) : ({ type: 'ok' } as KvResponse)));
    },
  } as unknown as KvApi;
  const reads: ReadApi = {
    stale: (r) => {
      log.push(`stale ${key(r)}`);
      return bulk(`stale ${key(r)}`);
    },
    lease: async (r) => {
      log.push(`lease ${key(r)}`);
      return leaseHolds
        ? bulk(`lease ${key(r)}`)
        : { type: 'failure', code: 'UNAVAILABLE' as never, message: 'no lease' };
    },
  };
  return { api, reads, log };
}

describe('RESP read modes', () => {
  it('picks a mode per request: WATCH and writes stay linearizable', () => {
    const watch: KvClientRequest = { kind: 'read', op: 'revisions', keys: [enc('a')] };
    expect(readModeOf(get('a'), true, true)).toBe('stale');
    expect(readModeOf(get('a'), false, true)).toBe('lease');
    expect(readModeOf(get('a'), false, false)).toBe('linearizable');
    expect(readModeOf(watch, true, true)).toBe('linearizable');
    expect(readModeOf(set('a'), true, true)).toBe('linearizable');
  });

  it('serves stale reads after the writes before them, in order, and lease reads falling back to ReadIndex', async () => {
    const n = node(true);
    const reqs = [set('a'), get('b'), get('c'), set('d'), get('e')];
    const modes: ReadMode[] = ['linearizable', 'stale', 'stale', 'linearizable', 'lease'];
    const res = await executeWithModes(n.api, n.reads, reqs, modes);
    expect(res.map((r) => (r.type === 'bulk' ? Buffer.from(r.value).toString() : r.type))).toEqual([
      'ok',
      'stale b',
      'stale c',
      'ok',
      'lease e',
    ]);
    expect(n.log).toEqual(['linearizable w', 'stale b', 'stale c', 'linearizable w', 'lease e']);

    const noLease = node(false);
    const [r, r2] = await executeWithModes(noLease.api, noLease.reads, [get('x'), get('y')], ['lease', 'lease']);
    expect([r, r2]).toEqual([bulk('linearizable x'), bulk('linearizable y')]);
    expect(noLease.log).toEqual(['lease x', 'lease y', 'linearizable x,y']);

    // A follower forwards its reads with the rest of the pipeline, lease or not.
    const follower = node(true, 'follower');
    await executeWithModes(
      follower.api,
      follower.reads,
      [get('p'), get('q'), set('r')],
      ['lease', 'lease', 'linearizable'],
    );
    expect(follower.log).toEqual(['linearizable p,q,w']);
  });
});
