import { NotLeaderError, ProposalDroppedError, StorageError, TimeoutError, emptyConfState } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { startGroup } from '../../src/index.js';
import { Cluster, MachineDisk, MapMachine, cmd, until } from './cluster.js';
import { MemoryNodeStore } from './memory-node-store.js';

let clusters: Cluster[] = [];
afterEach(() => {
  for (const c of clusters) c.stop();
  clusters = [];
});

function cluster(...args: ConstructorParameters<typeof Cluster>): Cluster {
  const c = new Cluster(...args);
  clusters.push(c);
  return c;
}

describe('durable applied index', () => {
  it('log compaction never passes the durably applied index', async () => {
    const c = cluster(['a', 'b', 'c'], ['p0'], { snapshotEntries: 10, compactionMarginEntries: 2 });
    const leader = await until('a leader', () => c.leader());
    const checks: { marker: number; compactTo: number; durable: number }[] = [];
    for (const id of c.ids) {
      const n = c.node(id);
      const save = n.store.saveSnapshot.bind(n.store);
      n.store.saveSnapshot = (group, snapshot, compactTo) => {
        // What the machine holds durably before this save (which syncs it).
        checks.push({ marker: snapshot.meta.index, compactTo, durable: n.disks.get(group)!.applied.index });
        return save(group, snapshot, compactTo);
      };
    }
    await Promise.all(Array.from({ length: 120 }, (_, i) => c.node(leader).host.propose('p0', cmd(`k${i}=${i}`))));
    await until('every node compacted', () => c.ids.every((id) => c.node(id).store.storage('p0').firstIndex() > 20));
    expect(checks.length).toBeGreaterThanOrEqual(3);
    for (const ch of checks) {
      expect(ch.marker).toBeLessThanOrEqual(ch.durable);
      expect(ch.compactTo).toBeLessThanOrEqual(ch.marker);
    }
  });

  it('a crash loses unsynced applies, and the restarted machine resumes from what it holds durably', async () => {
    const c = cluster(['a', 'b', 'c'], ['p0'], { snapshotEntries: 10, compactionMarginEntries: 2 });
    const leader = await until('a leader', () => c.leader());
    await Promise.all(Array.from({ length: 50 }, (_, i) => c.node(leader).host.propose('p0', cmd(`k${i}=${i}`))));
    const follower = c.ids.find((id) => id !== leader)!;
    const f = c.node(follower);
    await until('follower applied all', () => f.sms.get('p0')!.map.get('k49') === '49');
    f.host.stop();
    // The disk may be behind the live machine: a restart starts from the disk, never below the log's marker.
    const durable = f.disks.get('p0')!.applied.index;
    expect(durable).toBeGreaterThanOrEqual(f.store.storage('p0').snapshot().meta.index);
    const back = c.start(follower, f.store, f.disks);
    expect(back.host.status('p0').applied).toBe(durable);
    await until('restarted follower has every key', () => back.sms.get('p0')!.map.size === 50);
    expect(back.sms.get('p0')!.appliedIndexes.every((i) => i > durable)).toBe(true);
  });

  it('refuses proposals while the log holds more than maxLogBytes', async () => {
    /** A store reporting the log's size, as the storage package's do. */
    class SizedStore extends MemoryNodeStore {
      bytes = 0;
      stats(): { shouldSnapshot: boolean; bytes: number; bytesSinceSnapshot: number } {
        return { shouldSnapshot: false, bytes: this.bytes, bytesSinceSnapshot: this.bytes };
      }
      admitProposal(): void {}
    }
    const c = cluster(['a', 'b', 'c'], ['p0'], { maxLogBytes: 1000 }, 1, () => new SizedStore());
    const leader = c.node(await until('a leader', () => c.leader()));
    await leader.host.propose('p0', cmd('ok=1'));
    (leader.store as SizedStore).bytes = 999;
    await expect(leader.host.propose('p0', cmd('no=1'))).rejects.toBeInstanceOf(ProposalDroppedError);
    (leader.store as SizedStore).bytes = 0;
    await leader.host.propose('p0', cmd('yes=1'));
  });
});

describe('group start', () => {
  const meta = (index: number) => ({ index, term: 1, confState: { ...emptyConfState(), voters: ['a'] } });

  it('restores an old image newer than the machine through restoreLegacy, and refuses one it cannot restore', async () => {
    const store = new MemoryNodeStore();
    await store.write([{ group: 'p0', snapshot: { meta: meta(7), data: cmd('image') } }]);
    const plain = new MapMachine();
    expect(() => startGroup(store, 'p0', plain)).toThrow(StorageError);
    const restored: number[] = [];
    const legacy = Object.assign(new MapMachine(), {
      restoreLegacy(this: MapMachine, snap: { meta: { index: number } }) {
        restored.push(snap.meta.index);
        this.disk.applied = meta(snap.meta.index);
      },
    });
    // MapMachine reads its position from the disk it was built on; restoreLegacy moves it.
    legacy.applied = () => legacy.disk.applied;
    const start = startGroup(store, 'p0', legacy);
    expect(restored).toEqual([7]);
    expect(start.restoredLegacy).toBe(true);
    expect(start.applied.index).toBe(7);
  });

  it('refuses a machine behind the log marker: its state was lost, and the message says what to do', async () => {
    const store = new MemoryNodeStore();
    await store.write([{ group: 'p0', snapshot: { meta: meta(7), data: new Uint8Array(0) } }]);
    expect(() => startGroup(store, 'p0', new MapMachine())).toThrow(/Wipe this node's data directory/);
  });

  it('writes a marker at the machine position when the machine is past the log', () => {
    const store = new MemoryNodeStore();
    const disk = new MachineDisk();
    disk.applied = meta(12);
    const start = startGroup(store, 'p0', new MapMachine(disk));
    expect(start.repaired).toBe(true);
    expect(store.storage('p0').snapshot().meta.index).toBe(12);
    expect(store.storage('p0').snapshot().data.length).toBe(0);
  });
});

describe('test-only fault switches', () => {
  it('readsWithoutReadIndex: a cut-off leader serves reads at once; without it, the read fails', async () => {
    const faulty = cluster(['a', 'b', 'c'], ['p0'], { requestTimeoutMs: 300, faults: { readsWithoutReadIndex: true } });
    const fl = await until('a leader', () => faulty.leader());
    await faulty.node(fl).host.propose('p0', cmd('x=1'));
    faulty.hub.down.add(fl);
    await expect(faulty.node(fl).host.readIndex('p0')).resolves.toBeUndefined();

    const sound = cluster(['a', 'b', 'c'], ['p0'], { requestTimeoutMs: 300 }, 2);
    const sl = await until('a leader', () => sound.leader());
    await sound.node(sl).host.propose('p0', cmd('x=1'));
    sound.hub.down.add(sl);
    // The round cannot reach a quorum: it times out, or fails once the leader steps down (check-quorum).
    const err = await sound
      .node(sl)
      .host.readIndex('p0')
      .catch((e: unknown) => e);
    expect(err instanceof TimeoutError || err instanceof NotLeaderError).toBe(true);
  });

  it('applyBeforeCommit: a cut-off leader applies an entry that never commits', async () => {
    const c = cluster(['a', 'b', 'c'], ['p0'], { requestTimeoutMs: 300, faults: { applyBeforeCommit: true } });
    const leader = await until('a leader', () => c.leader());
    const n = c.node(leader);
    await n.host.propose('p0', cmd('before=1'));
    c.hub.down.add(leader);
    const stuck = n.host.propose('p0', cmd('lost=1')).catch((e: unknown) => e);
    await until('the uncommitted entry is applied', () => n.sms.get('p0')!.map.get('lost') === '1');
    const s = n.host.status('p0');
    expect(s.applied).toBeGreaterThan(s.commit);
    await stuck;
  });
});
