import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SlotMap } from '@cohort/kv';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CRASH_AFTER_FAILOVER_ENV } from '../src/fault-hooks.js';
import { ProcCluster, type ProcNode, poll } from './helpers/processes.js';

/** What `GET /v1/partitions` answers for one partition, the fields this test reads. */
interface Partition {
  partition: number;
  replicas: string[];
  learners?: string[];
  local: boolean;
  engine?: 'vpaxos';
  acceptor?: {
    compacted: number;
    votes: number;
    snapshotsInstalled: number;
    snapshotsSent: number;
    snapshotPaceBackoffs: number;
  };
  role?: string;
  leader?: string;
  ballot?: number;
  underReplicated?: boolean;
  commit?: number;
  applied?: number;
}

/** The vpaxos partition (p3, on n4 and n1; p0..p2 are raft, on three nodes each). */
const VP = 3;
/** Applied slots between acceptor compactions: small, so a replacement catches up by snapshot. */
const COMPACT_SLOTS = 20;
/** The vpaxos read lease and its drift margin: a failover to another primary waits both out. */
const LEASE_MS = 1000;
const DRIFT_MS = 100;
const clients: Redis[] = [];
let cluster: ProcCluster | undefined;
/** Present: the crash-after-failover-ballot test fault is disarmed; removed to arm it. */
let marker = '';
let debugErrors: string[] = [];
const slots = new SlotMap(4);
const enc = new TextEncoder();
const alive = (n: ProcNode): boolean =>
  n.child !== undefined && n.child.exitCode === null && n.child.signalCode === null;

async function partitions(node: ProcNode): Promise<Partition[] | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.http}/v1/partitions`, { signal: AbortSignal.timeout(1000) });
    return ((await res.json()) as { partitions: Partition[] }).partitions;
  } catch {
    return undefined;
  }
}

function plain(node: ProcNode): Redis {
  const r = new Redis({
    port: node.resp,
    host: '127.0.0.1',
    maxRetriesPerRequest: 1,
    commandTimeout: 8_000,
    retryStrategy: () => null,
  });
  r.on('error', () => {});
  clients.push(r);
  return r;
}

/** Keys of the vpaxos partition, `prefix:i`. */
function vpKeys(prefix: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const k = `${prefix}:${i}`;
    if (slots.partitionOfKey(enc.encode(k)) === VP) out.push(k);
  }
  return out;
}

/** The vpaxos partition as its active primary reports it, once every live node routes to that primary and `ok` holds. */
async function settled(ms: number, ok: (p: Partition) => boolean): Promise<Partition> {
  const c = cluster!;
  let last = '';
  return poll('the vpaxos partition settled as expected on every live node', ms, async () => {
    const views = await Promise.all(c.nodes.filter(alive).map((n) => partitions(n)));
    const mine = views.map((v) => v?.[VP]);
    last = JSON.stringify(mine);
    if (mine.some((p) => p === undefined)) return undefined;
    const primary = mine.find((p) => p!.local && p!.role === 'leader');
    if (primary === undefined || !ok(primary)) return undefined;
    return mine.every((p) => p!.leader === primary.leader) ? primary : undefined;
  }).catch((err: Error) => {
    throw new Error(`${err.message}; last views: ${last}`);
  });
}

/**
 * Writers of distinct keys through the live nodes; a writer whose node died
 * moves to another. A write answered OK is acknowledged; any other outcome
 * is unknown (it may or may not have applied) and is not checked.
 */
function writeLoad(prefix: string, writers: number) {
  const c = cluster!;
  const keys = vpKeys(prefix, 20_000);
  const acked = new Map<string, string>();
  const state = { next: 0, stop: false, unknown: 0, lastAck: 0, errors: [] as string[] };
  debugErrors = state.errors;
  const loops = Array.from({ length: writers }, async (_, w) => {
    let node = c.nodes.filter(alive)[w % c.nodes.filter(alive).length]!;
    let r = plain(node);
    while (!state.stop && state.next < keys.length) {
      const k = keys[state.next++]!;
      try {
        expect(await r.set(k, `v-${k}`)).toBe('OK');
        acked.set(k, `v-${k}`);
        state.lastAck = Date.now();
      } catch (err) {
        state.unknown++;
        state.errors.push(`${Date.now()} ${node.id}: ${(err as Error).message}`);
        await new Promise((res) => setTimeout(res, 50));
        if (r.status === 'end' || r.status === 'close' || !alive(node)) {
          // The node went away: the writer moves to the next live node.
          r.disconnect();
          const live = c.nodes.filter((n) => alive(n) && n !== node);
          node = live[w % live.length]!;
          r = plain(node);
        }
      }
    }
  });
  return {
    acked,
    state,
    /** Resolves once `n` more writes were acknowledged. */
    more: (n: number, ms: number) => {
      const target = acked.size + n;
      return poll(`${n} more acknowledged writes`, ms, async () => (acked.size >= target ? true : undefined));
    },
    stop: async () => {
      state.stop = true;
      await Promise.all(loops);
    },
  };
}

/** Every acknowledged write reads back, through `node` (linearizable reads). */
async function checkAcked(node: ProcNode, acked: Map<string, string>): Promise<void> {
  const reader = plain(node);
  const keys = [...acked.keys()];
  for (let i = 0; i < keys.length; i += 200) {
    const batch = keys.slice(i, i + 200);
    const values = await reader.mget(...batch);
    batch.forEach((k, j) => expect(values[j], k).toBe(acked.get(k)));
  }
}

/**
 * The longest wait before an activation of `primary` in a ballot above `after` that any node's log
 * records: the meta leader logs each activation with how long it waited on its own clock.
 */
function activationWaits(primary: string, after: number): number {
  const waits = cluster!.nodes
    .flatMap((n) => n.log.split('\n'))
    .filter((l) => l.includes('vpaxos ballot activated') && l.startsWith('{') && l.endsWith('}'))
    .map((l) => JSON.parse(l) as { waitedMs?: number; primary?: string; ballot?: number })
    .filter((l) => l.primary === primary && (l.ballot ?? 0) > after);
  return Math.max(-1, ...waits.map((l) => l.waitedMs ?? 0));
}

/** The replica on `node` applied up to the primary's commit. */
async function caughtUp(node: ProcNode, primary: ProcNode): Promise<void> {
  const commit = (await partitions(primary))![VP]!.commit ?? 0;
  await poll(`${node.id} applied up to the primary's commit ${commit}`, 10_000, async () => {
    const v = (await partitions(node))?.[VP];
    return v?.local && (v.applied ?? 0) >= commit ? true : undefined;
  });
}

beforeAll(async () => {
  // Four nodes; the meta group's voters are n1..n3, and p3's replicas n4 (its first primary) and n1.
  cluster = await ProcCluster.create(4, [
    '--partitions',
    '4',
    '--partition-engines',
    `${VP}=vpaxos`,
    '--heartbeat-ms',
    '50',
    '--election-timeout-ms',
    '300',
    '--swim-probe-ms',
    '100',
    // Lease reads on: RESP reads are served by the primary under its lease; a new primary waits it out.
    '--vpaxos-read-lease-ms',
    String(LEASE_MS),
    '--vpaxos-lease-max-drift-ms',
    String(DRIFT_MS),
    // Acceptors compact their votes every few slots: a replacement lacks compacted slots and gets the snapshot.
    '--vpaxos-compact-slots',
    String(COMPACT_SLOTS),
  ]);
  marker = join(cluster.root, 'crash-after-failover');
  writeFileSync(marker, '');
  for (const n of cluster.nodes) n.env = { [CRASH_AFTER_FAILOVER_ENV]: marker };
  const [n1, n2, n3, n4] = cluster.nodes as [ProcNode, ProcNode, ProcNode, ProcNode];
  // n1 starts once n2 and n3 founded the cluster, so the meta group's first leader is n2 or n3, not a replica of p3.
  for (const n of [n2, n3, n4]) cluster.start(n);
  await poll('the cluster founded by n2 and n3', 40_000, async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${n2.http}/v1/meta`, { signal: AbortSignal.timeout(1000) });
      return ((await res.json()) as { clusterId: string }).clusterId !== '' ? true : undefined;
    } catch {
      return undefined;
    }
  });
  cluster.start(n1);
  await settled(40_000, (p) => p.engine === 'vpaxos' && p.replicas.length === 2 && p.ballot !== undefined);
}, 90_000);

afterAll(async () => {
  // VP_DEBUG=1: each node's Vertical Paxos and warning log lines, and the writers' first errors.
  if (process.env.VP_DEBUG)
    for (const n of cluster?.nodes ?? [])
      console.log(
        n.id,
        n.log
          .split('\n')
          .filter((l) => /vpaxos|test fault|"level":[45]0/.test(l))
          .map((l) => l.slice(0, 400))
          .join('\n'),
      );
  if (process.env.VP_DEBUG) console.log(debugErrors.slice(0, 40).join('\n'));
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

describe('a vpaxos partition of 2 replicas (f = 1) beside raft partitions of 3', () => {
  it('survives a SIGKILL of its primary under load, and of the meta leader right after it committed the failover ballot: no acknowledged write lost, a replacement caught up', async () => {
    const c = cluster!;
    const load = writeLoad('a', 4);
    await load.more(100, 20_000);
    // The kill comes with both copies in the active ballot and no ballot pending: on a loaded machine the master
    // may have dropped a backup it judged failed meanwhile (then added it back), and killing the lone copy of a
    // degraded ballot leaves nothing to fail over to until it returns.
    const first = await settled(
      20_000,
      (p) => p.replicas.length === 2 && p.learners?.length === 0 && !p.underReplicated,
    );
    const primary = c.nodes.find((n) => n.id === first.leader)!;
    const backup = c.nodes.find((n) => n.id === first.replicas.find((id) => id !== primary.id))!;
    // Armed: the meta leader that commits the failover ballot (unless it is the survivor) SIGKILLs itself then.
    rmSync(marker);
    const killedAt = Date.now();
    await c.kill(primary);
    // The master activates the surviving backup alone (read quorum = 1): writes continue on one copy.
    await load.more(1, 20_000);
    const failoverMs = load.state.lastAck - killedAt;
    const crashed = existsSync(marker);
    const failover = await settled(15_000, (p) => p.leader === backup.id);
    expect(failover.ballot).toBeGreaterThan(first.ballot!);
    // A new primary: its activation waited out the old one's read lease, even on a meta leader that took over.
    expect(activationWaits(backup.id, first.ballot!)).toBeGreaterThanOrEqual(LEASE_MS + DRIFT_MS);
    // Then it reconfigures to {survivor, replacement} once the replacement caught up.
    const healed = await settled(25_000, (p) => p.replicas.length === 2 && p.underReplicated === false);
    expect(healed.leader).toBe(backup.id);
    const replacement = c.nodes.find((n) => n.id === healed.replicas.find((id) => id !== backup.id))!;
    expect(alive(replacement)).toBe(true);
    await load.more(50, 15_000);
    await load.stop();
    await checkAcked(backup, load.acked);
    await caughtUp(replacement, backup);
    // The replacement joined after the survivor had compacted its votes: it caught up by the partition snapshot.
    const joined = (await partitions(replacement))![VP]!.acceptor!;
    const survivor = (await partitions(backup))![VP]!.acceptor!;
    expect(joined.snapshotsInstalled).toBeGreaterThanOrEqual(1);
    expect(survivor.snapshotsSent).toBeGreaterThanOrEqual(1);
    // Its transfer was paced (by the node's shared pacer): the cuts it made are counted, none on the receiver.
    expect(Number.isInteger(survivor.snapshotPaceBackoffs)).toBe(true);
    expect(joined.snapshotPaceBackoffs).toBe(0);
    // Each acceptor holds a bounded number of votes (the threshold plus the margin kept for slot-by-slot
    // catch-up, plus any in flight), not one per write.
    expect(survivor.compacted).toBeGreaterThan(0);
    expect(survivor.votes).toBeLessThanOrEqual(2 * COMPACT_SLOTS);
    expect(joined.votes).toBeLessThanOrEqual(2 * COMPACT_SLOTS);
    const dead = c.nodes.filter((n) => !alive(n));
    // With the crash, the meta leader died too (and the meta group carried the failover on); without it, it was the survivor.
    expect(dead.length).toBe(crashed ? 2 : 1);
    // The deposed primary comes back holding no replica: a client reaching it is served by the new primary.
    c.start(primary);
    await poll('the deposed primary routing to the new one', 30_000, async () =>
      (await partitions(primary))?.[VP]?.leader === backup.id ? true : undefined,
    );
    const [k] = vpKeys('deposed', 1);
    expect(await plain(primary).set(k!, 'x')).toBe('OK');
    expect(await plain(backup).get(k!)).toBe('x');
    console.log(
      `vpaxos failover: ${load.acked.size} acknowledged writes, ${load.state.unknown} of unknown outcome, ` +
        `replacement installed ${joined.snapshotsInstalled} snapshot(s) (sender backed off ${survivor.snapshotPaceBackoffs} time(s); survivor compacted through ${survivor.compacted}, holds ${survivor.votes} votes), ` +
        `first acknowledged write ${failoverMs} ms after the kill; meta leader ${crashed ? 'crashed after committing the failover ballot' : 'was the survivor (no crash)'}`,
    );
  }, 150_000);

  it('serves lease reads on the primary; a primary stopped past its lease (SIGSTOP, failover, SIGCONT) serves no stale read', async () => {
    const c = cluster!;
    for (const n of c.nodes) if (!alive(n)) c.start(n);
    const first = await settled(40_000, (p) => p.replicas.length === 2 && p.underReplicated === false);
    const primary = c.nodes.find((n) => n.id === first.leader)!;
    const writerNode = c.nodes.find((n) => !first.replicas.includes(n.id))!;
    const [key] = vpKeys('lease', 1) as [string];
    const state = { acked: 0, stop: false, stopped: false, contAt: 0 };
    /** Writes given up (outcome unknown): one may still apply late, after later ones, as a concurrent write may. */
    const unknown = new Set<number>();
    const stale: string[] = [];
    const served = { leaseBefore: 0, leaseAfter: 0, oldAfterCont: 0, oldRefused: 0, resp: 0, lateUnknown: 0 };
    const t0 = Date.now();
    const marks: string[] = [];
    const mark = (what: string): void => {
      marks.push(`${what} +${Date.now() - t0} ms`);
    };
    // One writer of an increasing counter: a read that began after value f was acknowledged may return f or
    // later, or a write of unknown outcome (still concurrent), never an acknowledged value below f.
    const writer = (async () => {
      // A write forwarded to the stopped primary is given up soon (its outcome unknown), and the next one
      // goes on a new connection (a RESP connection answers in order, so it would wait behind the first).
      const connect = (): Redis => {
        const r = plain(writerNode);
        r.options.commandTimeout = 1_000;
        return r;
      };
      let w = connect();
      for (let i = 1; !state.stop; i++) {
        try {
          if ((await w.set(key, String(i))) === 'OK') state.acked = Math.max(state.acked, i);
        } catch {
          unknown.add(i);
          w.disconnect();
          w = connect();
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })();
    const check = (node: ProcNode, how: string, floor: number, value: string | null | undefined): void => {
      const v = Number(value ?? 0);
      if (v < floor && unknown.has(v)) served.lateUnknown++;
      if (v < floor && !unknown.has(v))
        stale.push(`${how} on ${node.id} returned ${v} after ${floor} was acknowledged (${Date.now() - t0} ms)`);
    };
    // Reads fired every 40 ms at every node without waiting for the last: those at a stopped node queue up
    // and are answered when it resumes, each checked against what was acknowledged when it was sent.
    const resp = new Map(c.nodes.filter(alive).map((n) => [n.id, plain(n)]));
    const inflight: Promise<void>[] = [];
    /** Why the stopped primary refused its queued lease reads. */
    const refusals = new Set<string>();
    const fire = (): void => {
      for (const n of c.nodes.filter(alive)) {
        const floor = state.acked;
        const stoppedNow = n === primary && state.stopped;
        inflight.push(
          fetch(`http://127.0.0.1:${n.http}/v1/kv/${key}?consistency=lease`, { signal: AbortSignal.timeout(20_000) })
            .then(async (res) => {
              if (res.status !== 200) {
                if (stoppedNow) {
                  served.oldRefused++;
                  const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
                  refusals.add(`${res.status} ${body.error?.code}: ${body.error?.message}`);
                }
                return;
              }
              check(n, 'HTTP lease read', floor, ((await res.json()) as { value: string }).value);
              if (n === primary && !state.stopped && state.contAt === 0) served.leaseBefore++;
              if (n !== primary && state.stopped) served.leaseAfter++;
              if (n === primary && stoppedNow) served.oldAfterCont++;
            })
            .catch(() => {}),
          (resp.get(n.id)?.get(key) ?? Promise.resolve(null)).then(
            (v) => {
              served.resp++;
              check(n, 'RESP GET', floor, v);
            },
            () => {},
          ),
        );
      }
    };
    mark('settled');
    const prober = setInterval(fire, 40);
    try {
      await poll('lease reads served by the primary', 10_000, async () =>
        served.leaseBefore >= 5 && state.acked >= 10 ? true : undefined,
      );
      // The primary stops (its monotonic clock runs on); the master fails it over to the backup after the lease.
      const ackedAtStop = state.acked;
      mark('stop');
      primary.child!.kill('SIGSTOP');
      state.stopped = true;
      await poll('writes acknowledged by the new primary', 30_000, async () =>
        state.acked >= ackedAtStop + 20 && served.leaseAfter >= 5 ? true : undefined,
      );
      // It resumes, with queued reads; its lease ran out long ago, so none is served from its old state.
      mark('failed over');
      primary.child!.kill('SIGCONT');
      state.contAt = Date.now();
      await poll('the resumed primary answered its queued reads', 20_000, async () =>
        served.oldAfterCont + served.oldRefused >= 1 ? true : undefined,
      );
      mark('answered');
    } finally {
      clearInterval(prober);
      if (state.stopped) primary.child?.kill('SIGCONT');
      state.stop = true;
    }
    await writer;
    await Promise.all(inflight);
    expect(stale, marks.join(', ')).toEqual([]);
    // The lease reads queued at the stopped primary were all refused: it steps down on the new ballot's
    // Phase 1 message it finds queued (NOT_LEADER) or, read first, its lease ran out by its monotonic clock
    // (UNAVAILABLE; that rule alone is tested in @cohort/vpaxos and the simulator); it earns none again.
    expect(served.oldRefused).toBeGreaterThan(0);
    expect(served.oldAfterCont).toBe(0);
    expect(served.resp).toBeGreaterThan(0);
    // The master waited the old primary's lease + drift before activating the new primary (its log says so).
    const newPrimary = (await settled(10_000, (p) => p.leader !== primary.id)).leader!;
    const waited = activationWaits(newPrimary, first.ballot!);
    expect(waited).toBeGreaterThanOrEqual(LEASE_MS + DRIFT_MS);
    console.log(
      `vpaxos leases: ${served.leaseBefore} lease reads on the primary before the stop, ${served.leaseAfter} on others after it, ` +
        `${served.oldAfterCont} served and ${served.oldRefused} refused by the resumed primary (${[...refusals].join('; ')}), ` +
        `${served.lateUnknown} returned a write given up before a later one was acknowledged (applied late), ` +
        `activation waited ${waited} ms; ${marks.join(', ')}`,
    );
  }, 120_000);
});
