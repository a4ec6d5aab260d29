import { CorruptStateError, UnavailableError } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, cmd, until } from './cluster.js';

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

/** Proposes `k<i>=<i>` for i in [from, to) on the current leader, retrying while leadership moves. */
async function write(c: Cluster, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    await until(`write k${i}`, () => {
      const l = c.leader();
      if (l === undefined) return false;
      return c
        .node(l)
        .host.propose('p0', cmd(`k${i}=${i}`))
        .then(
          () => true,
          () => false,
        );
    }).then(async (p) => {
      if (!(await p)) await write(c, i, i + 1);
    });
  }
}

const mapOf = (c: Cluster, id: string) => c.node(id).sms.get('p0')!.map;

describe('a replica whose state machine data is corrupt', () => {
  it('restores it from a healthy replica, replays what committed meanwhile, and serves again without stopping', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { repairRetryMs: 200 });
    const c = cluster;
    const leader = await until('a leader', () => c.leader(), 10_000);
    await write(c, 0, 20);
    const victim = c.ids.find((id) => id !== leader)!;
    await until('the victim applied k19', () => mapOf(c, victim).get('k19') === '19');
    let fatal: Error | undefined;
    c.node(victim).host.onFatal = (err) => {
      fatal = err;
    };
    // Its stored state now fails its checksum: the next batch it applies finds out.
    c.node(victim).sms.get('p0')!.corrupt = true;
    await write(c, 20, 60);
    const leaderMap = mapOf(c, c.leader()!);
    await until(
      'the victim restored its state',
      () => c.node(victim).host.stats().replicaRepairsDone === 1 && !c.node(victim).host.status('p0').repairing,
    );
    await until('the victim caught up', () => mapOf(c, victim).get('k59') === '59');
    expect(fatal).toBeUndefined();
    expect(c.node(victim).host.stats().replicaRepairs).toBe(1);
    expect(c.node(victim).sms.get('p0')!.installs).toBeGreaterThanOrEqual(1);
    expect([...mapOf(c, victim)].sort()).toEqual([...leaderMap].sort());
    // It keeps applying like any replica.
    await write(c, 60, 70);
    await until('the victim applies new writes', () => mapOf(c, victim).get('k69') === '69');
  });

  it('as leader, hands its leadership over, refuses reads while repairing, and restores its state', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { repairRetryMs: 200, electionTicks: 50 });
    const c = cluster;
    const old = await until('a leader', () => c.leader(), 10_000);
    await write(c, 0, 10);
    const others = c.ids.filter((id) => id !== old);
    await until('the followers apply k9', () => others.every((id) => mapOf(c, id).get('k9') === '9'));
    // Pulls go unanswered for now, so the repair stays under way.
    const pull = '/cohort/snapshot-pull/1';
    const handlers = others.map((id) => c.hub.nodes.get(id)!.requestHandlers.get(pull)!);
    for (const id of others) c.hub.nodes.get(id)!.requestHandlers.set(pull, () => new Promise(() => {}));
    const started = Date.now();
    c.node(old).host.repair('p0', new CorruptStateError('row k3 fails its checksum', 'p0'));
    expect(c.node(old).host.status('p0').repairing).toBe(true);
    await expect(c.node(old).host.readIndex('p0')).rejects.toBeInstanceOf(UnavailableError);
    const next = await until('a new leader among the others', () => c.leader('p0', others), 2000);
    // Elections take 500-1000 ms here: the handover is faster.
    expect(Date.now() - started).toBeLessThan(450);
    expect(others).toContain(next);
    await write(c, 10, 30);
    expect(c.node(old).host.status('p0').repairing).toBe(true);
    others.forEach((id, i) => c.hub.nodes.get(id)!.requestHandlers.set(pull, handlers[i]!));
    await until('the old leader restored its state', () => !c.node(old).host.status('p0').repairing);
    await until('the old leader caught up', () => mapOf(c, old).get('k29') === '29');
    expect([...mapOf(c, old)].sort()).toEqual([...mapOf(c, next)].sort());
    expect(c.node(old).host.stats().replicaRepairsDone).toBe(1);
  });

  it('asks another replica when the one asked does not answer, and replays its own log past an older snapshot', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { repairRetryMs: 100 });
    const c = cluster;
    const leader = await until('a leader', () => c.leader(), 10_000);
    await write(c, 0, 10);
    const victim = c.ids.find((id) => id !== leader)!;
    const third = c.ids.find((id) => id !== leader && id !== victim)!;
    await until('every replica applied k9', () => c.ids.every((id) => mapOf(c, id).get('k9') === '9'));
    // The third replica falls behind (it hears no Raft traffic), and the leader never answers a pull.
    c.hub.nodes.get(third)!.handlers.set('/cohort/raft/1', () => {});
    c.hub.nodes.get(leader)!.requestHandlers.set('/cohort/snapshot-pull/1', () => new Promise(() => {}));
    c.node(victim).sms.get('p0')!.corrupt = true;
    // The leader and the repairing victim still commit these: the victim stores and acknowledges them.
    await write(c, 10, 30);
    await until('the victim restored its state', () => !c.node(victim).host.status('p0').repairing);
    // From the third replica's older snapshot plus its own log: everything the leader has, k10..k29 included.
    expect(mapOf(c, third).has('k29')).toBe(false);
    await until('the victim caught up', () => mapOf(c, victim).get('k29') === '29');
    expect([...mapOf(c, victim)].sort()).toEqual([...mapOf(c, leader)].sort());
  });
});
