import { ClusterDownError, NotLeaderError, ProposalDroppedError, StorageError, systemClock } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type EngineFactory, rawNodeFactory } from '../../src/index.js';
import { Cluster, type TestNode, cmd, raftMessages, until } from './cluster.js';
import { MemoryNodeStore } from './memory-node-store.js';

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

/** A leader of a fresh cluster (one write applied) whose engines count the ReadIndex rounds started from here on. */
async function countingReadRounds(): Promise<{ leader: TestNode; rounds: () => number }> {
  let rounds = 0;
  const createEngine: EngineFactory = (o, storage, peers) => {
    const engine = rawNodeFactory(o, storage, peers);
    return {
      ...engine,
      readIndex(ctx: Uint8Array): void {
        rounds++;
        engine.readIndex(ctx);
      },
    };
  };
  cluster = new Cluster(['a', 'b', 'c'], ['p0'], { createEngine });
  const c = cluster;
  const leader = c.node(await until('a leader', () => c.leader()));
  await leader.host.propose('p0', cmd('r=1'));
  rounds = 0;
  return { leader, rounds: () => rounds };
}

describe('RaftHost', () => {
  it('elects a leader, and a proposal resolves with its result once applied; every replica applies it', async () => {
    cluster = new Cluster(['a', 'b', 'c']);
    const c = cluster;
    const leader = await until('a leader', () => c.leader());
    const index = await c.node(leader).host.propose<number>('p0', cmd('x=1'));
    expect(index).toBeGreaterThan(3); // after the three bootstrap entries and the leader's no-op
    await until('all replicas apply x=1', () => c.ids.every((id) => c.node(id).sms.get('p0')!.map.get('x') === '1'));
    // A commit index alone is written lazily, but reaches the store within a tick.
    await until('the stored commit catches up', () => {
      const n = c.node(leader);
      return n.store.storage('p0').initialState().hardState.commit === n.host.status('p0').commit;
    });
  });

  it('a group handle that outlives its group (removed here) reports no quorum loss instead of throwing', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0', 'p1']);
    const c = cluster;
    await until('a leader', () => c.leader());
    const host = c.node('a').host;
    const handle = host.replicated('p1');
    expect(host.removeGroup('p1')).toBe(true);
    // KV services poll this from timers while a forward is in flight: a throw there would stop the process.
    expect(handle.quorumLost?.()).toBeUndefined();
  });

  it('a follower refuses proposals and reads with NotLeaderError naming the leader', async () => {
    cluster = new Cluster(['a', 'b', 'c']);
    const c = cluster;
    const leader = await until('a leader', () => c.leader());
    const follower = c.ids.find((id) => id !== leader)!;
    await until('follower learns the leader', () => c.node(follower).host.status('p0').leader === leader);
    const err = await c
      .node(follower)
      .host.propose('p0', cmd('y=2'))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotLeaderError);
    expect((err as NotLeaderError).leaderId).toBe(leader);
    await expect(c.node(follower).host.readIndex('p0')).rejects.toBeInstanceOf(NotLeaderError);
  });

  it('a read index resolves only after the writes committed before it are applied on the leader', async () => {
    cluster = new Cluster(['a', 'b', 'c']);
    const c = cluster;
    const leader = c.node(await until('a leader', () => c.leader()));
    const target = leader.host.status('p0').lastIndex + 20;
    const writes = Array.from({ length: 20 }, (_, i) => leader.host.propose('p0', cmd(`k${i}=${i}`)));
    // Writes still in flight when a read arrives are concurrent with it: it may or may not see them.
    // Once they are committed, it must.
    await until('the writes are committed', () => leader.host.status('p0').commit >= target);
    await leader.host.readIndex('p0');
    expect(leader.sms.get('p0')!.map.get('k19')).toBe('19');
    await Promise.all(writes);
  });

  it('reads issued in the same turn share one ReadIndex round', async () => {
    const { leader, rounds } = await countingReadRounds();
    await Promise.all(Array.from({ length: 50 }, () => leader.host.readIndex('p0')));
    expect(rounds()).toBe(1);
  });

  it('reads arriving while ReadIndex rounds are in flight start their own at once (rounds overlap)', async () => {
    const { leader, rounds } = await countingReadRounds();
    // One read per turn of the event loop for 30 turns; a round takes several turns (a heartbeat to
    // a follower, its answer), so rounds that waited for the one in flight would be 15 at most.
    const reads: Promise<void>[] = [];
    const done = new Set<number>();
    let overlapped = 0;
    for (let i = 0; i < 30; i++) {
      // Reads issued before this one and not yet confirmed: their rounds are in flight.
      if (i > 0 && !done.has(i - 1)) overlapped++;
      reads.push(leader.host.readIndex('p0').then(() => void done.add(i)));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(reads);
    expect(rounds()).toBeGreaterThan(15);
    expect(rounds()).toBeLessThanOrEqual(30);
    expect(overlapped).toBeGreaterThan(0);
  });

  it('persists the work of every group of a round in one store write (group commit)', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0', 'p1']);
    const c = cluster;
    const violations: string[] = [];
    for (const id of c.ids) {
      const node = c.node(id);
      c.hub.nodes.get(id)!.onSend = (to, frame) => {
        for (const { group, message } of raftMessages(id, to, frame)) {
          const hs = node.store.storage(group).initialState().hardState;
          // Terms go out only once written (persist-order.test.ts holds writes open to check durability).
          // Pre-votes carry the term a node would campaign in, which it has not taken (§9.6).
          const preVote = message.type === 'preVote' || message.type === 'preVoteResp';
          if (!preVote && message.term > hs.term)
            violations.push(`${id} sent term ${message.term} before persisting it`);
        }
      };
    }
    const leader = await until('a leader of p0', () => c.leader('p0'));
    await until('a leader of p1', () => c.leader('p1'));
    await Promise.all(Array.from({ length: 10 }, (_, i) => c.node(leader).host.propose('p0', cmd(`a${i}=1`))));
    expect(violations).toEqual([]);
    // Group commit: some write carries both groups at once.
    const writes = c.ids.flatMap((id) => c.node(id).store.writes);
    expect(writes.some((batch) => new Set(batch.map((w) => w.group)).size === 2)).toBe(true);
    const stats = c.node(leader).host.stats();
    expect(stats.storeWrites).toBe(c.node(leader).store.writes.length);
    expect(stats.entriesPersisted).toBeGreaterThanOrEqual(10);
    expect(stats.rounds).toBeGreaterThanOrEqual(stats.storeWrites);
  });

  // The request timeout is long: the cut-off leader must answer with its lost quorum (an election timeout,
  // counted in ticks, which a loaded machine delays), not with a timeout first.
  it('a new leader takes over when the leader is cut off, and the cut-off leader cannot commit', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { requestTimeoutMs: 3000 });
    const c = cluster;
    const old = await until('a leader', () => c.leader());
    await c.node(old).host.propose('p0', cmd('before=1'));
    c.hub.down.add(old);
    const stuck = c
      .node(old)
      .host.propose('p0', cmd('lost=1'))
      .catch((e: unknown) => e);
    const others = c.ids.filter((id) => id !== old);
    const next = await until('a new leader', () => c.leader('p0', others));
    expect(next).not.toBe(old);
    await c.node(next).host.propose('p0', cmd('after=1'));
    expect(c.node(next).sms.get('p0')!.map.get('before')).toBe('1');
    // Cut off for longer than an election timeout, the old leader says it lost its quorum and whom it cannot reach.
    const err = await stuck;
    expect(err).toBeInstanceOf(ClusterDownError);
    for (const id of others) expect((err as Error).message).toContain(id);
    expect(c.node(next).sms.get('p0')!.map.has('lost')).toBe(false);
  });

  it('compacts a long log behind metadata-only markers, and a restarted node resumes from its own applied index', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { snapshotEntries: 20, compactionMarginEntries: 5 });
    const c = cluster;
    const leader = await until('a leader', () => c.leader());
    for (let i = 0; i < 60; i++) await c.node(leader).host.propose('p0', cmd(`k${i}=${i}`));
    const follower = c.ids.find((id) => id !== leader)!;
    await until('follower applies all', () => c.node(follower).sms.get('p0')!.map.get('k59') === '59');
    const node = c.node(follower);
    const store = node.store;
    expect(store.storage('p0').snapshot().meta.index).toBeGreaterThan(20);
    expect(store.storage('p0').firstIndex()).toBeGreaterThan(1);
    // No state is serialized: every marker is metadata only.
    expect(store.snapshots.length).toBeGreaterThan(0);
    expect(store.snapshots.every((s) => s.snapshot.data.length === 0)).toBe(true);
    // Restart the follower on its store and its machine's disk: it resumes where the machine stands.
    node.host.stop();
    const resumedAt = node.disks.get('p0')!.applied.index;
    expect(resumedAt).toBeGreaterThan(store.storage('p0').snapshot().meta.index - 1);
    const restarted = c.start(follower, store, node.disks);
    await until('restarted follower has every key', () => restarted.sms.get('p0')!.map.size === 60);
    expect(restarted.sms.get('p0')!.map.get('k0')).toBe('0');
    // Nothing at or below the machine's applied index was handed to it again.
    expect(restarted.sms.get('p0')!.appliedIndexes.every((i) => i > resumedAt)).toBe(true);
  });

  it('refuses proposals while a sized store says the log is over its byte bound', async () => {
    /** A store with the storage package's sizing methods, whose log can be declared full. */
    class SizedStore extends MemoryNodeStore {
      full = false;
      stats(): { shouldSnapshot: boolean } {
        return { shouldSnapshot: false };
      }
      admitProposal(): void {
        if (this.full) throw new ProposalDroppedError('log over its byte bound');
      }
    }
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], {}, 1, () => new SizedStore());
    const c = cluster;
    const leader = c.node(await until('a leader', () => c.leader()));
    await leader.host.propose('p0', cmd('ok=1'));
    (leader.store as SizedStore).full = true;
    await expect(leader.host.propose('p0', cmd('no=1'))).rejects.toBeInstanceOf(ProposalDroppedError);
    (leader.store as SizedStore).full = false;
    await leader.host.propose('p0', cmd('again=1'));
    expect(leader.sms.get('p0')!.map.has('no')).toBe(false);
  });
});

describe('RaftHost.fail', () => {
  it('hands leadership to a caught-up voter before stopping, so the group does not wait out an election timeout', async () => {
    // Elections take 500-1000 ms here; a handover makes the new leader in one round trip.
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { electionTicks: 50 });
    const c = cluster;
    const old = await until('a leader', () => c.leader(), 10_000);
    await c.node(old).host.propose('p0', cmd('x=1'));
    const others = c.ids.filter((id) => id !== old);
    await until('the followers apply x=1', () => others.every((id) => c.node(id).sms.get('p0')!.map.get('x') === '1'));
    let fatal: Error | undefined;
    c.node(old).host.onFatal = (err) => {
      fatal = err;
    };
    const failedAt = Date.now();
    c.node(old).host.fail('reading a row', new StorageError('row k fails its CRC32C check'));
    expect(fatal?.message).toBe('row k fails its CRC32C check');
    const next = await until('a new leader', () => c.leader('p0', others), 2000);
    expect(others).toContain(next);
    expect(Date.now() - failedAt).toBeLessThan(450);
    await expect(c.node(old).host.propose('p0', cmd('y=2'))).rejects.toThrow();
  });
});

/** Polls an async condition until it holds, or fails after `ms`. */
async function eventually(what: string, cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const settles = (p: Promise<void>, ok: boolean): Promise<boolean> =>
  p.then(
    () => ok,
    () => !ok,
  );

describe('RaftHost lease reads', () => {
  it('serves a read under the leader lease, refuses it on a follower, and checks the lease against the monotonic clock', async () => {
    // The hosts' clock: the system's, plus a jump that stands for a stalled event loop (time passes, no tick runs).
    let jump = 0;
    const clock = { ...systemClock, now: () => systemClock.now() + jump };
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { leaseReads: true, clock });
    const c = cluster;
    const id = await until('a leader', () => c.leader());
    const leader = c.node(id);
    await leader.host.propose('p0', cmd('lease=1'));
    await eventually('a lease read', () => settles(leader.host.leaseRead('p0'), true));
    expect(leader.sms.get('p0')!.map.get('lease')).toBe('1');
    expect(leader.host.replicated('p0').leaseRead).toBeDefined();
    const follower = c.node(c.ids.find((n) => n !== id)!);
    await expect(follower.host.leaseRead('p0')).rejects.toBeInstanceOf(NotLeaderError);
    // An election timeout passes by the clock while no tick ran: the engine still counts its lease, the clock does not.
    jump += 10 * 5;
    await expect(leader.host.leaseRead('p0')).rejects.toThrow(/lease does not hold/);
    jump = 0;
    // Cut off from its followers, the leader's lease lapses within an election timeout.
    await eventually('a lease read again', () => settles(leader.host.leaseRead('p0'), true));
    c.hub.down.add(id);
    await eventually('the isolated leader refuses lease reads', () => settles(leader.host.leaseRead('p0'), false));
  });

  it('offers no lease reads unless configured', async () => {
    cluster = new Cluster(['a', 'b', 'c']);
    const c = cluster;
    const id = await until('a leader', () => c.leader());
    expect(c.node(id).host.replicated('p0').leaseRead).toBeUndefined();
    await expect(c.node(id).host.leaseRead('p0')).rejects.toThrow(/lease does not hold/);
  });
});
