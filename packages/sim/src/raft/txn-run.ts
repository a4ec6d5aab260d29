import { type NodeId, SeededRandom } from '@cohort/core';
import { type KvClientWrite, type KvResponse, SlotMap, type TxnReply, type TxnRequest } from '@cohort/kv';
import { InvariantViolationError } from '../errors.js';
import { RaftCluster } from './cluster.js';
import { GROUP, type SimRaftNode, type SimTxnEnv } from './sim-node.js';

/** What a transaction seed's run reached: the sometimes-assertions are summed over a batch. */
export interface TxnCoverage {
  /** A transaction finished as committed by a node that met its intents after its coordinator died. */
  committedByReader: number;
  /** One finished as aborted that way. */
  abortedByReader: number;
  /** Crashes injected at a protocol step: `step.phase.who` (who: the coordinator or the partition's leader). */
  stepCrashes: Record<string, number>;
}

/** A transaction seed's outcome. */
export interface TxnSeedResult {
  seed: number;
  /** Transactions answered committed (success or failure branch), not applied, and unknown. */
  committed: number;
  notApplied: number;
  unknown: number;
  /** Double reads of every account that found a stable cut (each checked to sum to zero). */
  stableReads: number;
  /** Answers by kind (`txn`, or an error's or failure's first words). */
  replies: Record<string, number>;
  coverage: TxnCoverage;
  events: number;
}

/** Options of {@link runTxnSeed}. */
export interface TxnRunOptions {
  /** Simulated ms of transactions and faults, before the settling time. @default 12000 */
  simMs?: number;
  /** Chance that the step a run waits to crash at crashes when it comes (at most one crash per 2 s). @default 0.5 */
  stepCrashRate?: number;
}

const RESOLVE_TIMEOUT_MS = 1_500;
const RESOLVE_EVERY_MS = 300;
/** How long past its deadline an intent may live while faults come and go: a leader to elect, requests to time out. */
const INTENT_SLACK_MS = 6_000;
const ACCOUNTS_PER_PARTITION = 4;
/** The least simulated time between two crashes or cuts (a leader lost takes about two election timeouts to replace). */
const CRASH_GAP_MS = 2_000;
/** The protocol steps a run crashes at, in turn: each step as sent and as answered, by coordinator and participant. */
const STEP_CRASHES: [string, string, string][] = [
  'txnPrepare',
  'txnCommit',
  'txnResolve',
  'txnAbort',
  'txnForget',
].flatMap((step) =>
  ['send', 'answer'].flatMap((phase) =>
    ['coordinator', 'participant'].map((who): [string, string, string] => [step, phase, who]),
  ),
);
const PARTITIONS = 3;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** `count` keys of partition `p`, named `prefix` and a number. */
function keysOf(slots: SlotMap, p: number, prefix: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++)
    if (slots.partitionOfKey(enc.encode(`${prefix}${i}`)) === p) out.push(`${prefix}${i}`);
  return out;
}

/** One transaction the workload ran, and what its answer promised. */
interface Ran {
  id: number;
  /** The journal keys of each branch: one per partition the transaction touched. */
  success: string[];
  failure: string[];
  /** committed (which branch), not applied, or unknown (no answer, or an unknown outcome). */
  outcome: 'success' | 'failure' | 'none' | 'unknown';
}

/**
 * Runs one seed of bank transfers as cross-partition transactions over three
 * Raft groups on the production `KvService` and `TxnCoordinator`, with
 * crashes at protocol steps (of the coordinator's node and of participants'
 * leaders), random crashes, partitions and a lossy network. Always: a stable
 * double read of every account sums to zero; at the end each transaction's
 * journal keys are all present or all absent (present for those answered
 * committed, absent for those answered not applied), the accounts sum to zero,
 * and no intent is left; during the run no intent lives past its deadline
 * by more than the slack. Rejects with the seed on a violation.
 */
export async function runTxnSeed(seed: number, opts: TxnRunOptions = {}): Promise<TxnSeedResult> {
  const simMs = opts.simMs ?? 12_000;
  const crashRate = opts.stepCrashRate ?? 0.5;
  const root = new SeededRandom(seed);
  const work = root.fork();
  const faults = root.fork();
  const stepFaults = root.fork();
  const slots = new SlotMap(PARTITIONS);
  const accounts = [0, 1, 2].map((p) => keysOf(slots, p, 'acct', ACCOUNTS_PER_PARTITION));
  const coverage: TxnCoverage = { committedByReader: 0, abortedByReader: 0, stepCrashes: {} };
  const replay = `COHORT_TXN_SEED=${seed} pnpm --filter @cohort/sim exec vitest run test/txn-simulation.test.ts`;
  let violation: InvariantViolationError | undefined;
  const fail = (what: string): never => {
    violation ??= new InvariantViolationError('transaction atomicity', what, (cluster as RaftCluster).position());
    throw violation;
  };
  const groupOf = (p: number): string => (p === 0 ? GROUP : `g${p}`);
  const down = (): SimRaftNode[] => [...(cluster?.nodes.values() ?? [])].filter((n) => !n.up);
  let lastCrash = Number.NEGATIVE_INFINITY;
  let target = seed * 4;
  const crashSoon = (n: SimRaftNode | undefined, key: string): boolean => {
    // One node down at a time, and not too often: the three groups keep a majority and elect leaders.
    if (n === undefined || !n.up || down().length > 0 || cluster === undefined) return false;
    if (cluster.scheduler.now() < lastCrash + CRASH_GAP_MS) return false;
    lastCrash = cluster.scheduler.now();
    coverage.stepCrashes[key] = (coverage.stepCrashes[key] ?? 0) + 1;
    const c = cluster;
    c.scheduler.after(0, () => n.crash());
    c.scheduler.after(200 + stepFaults.int(0, 800), () => n.restart());
    return true;
  };
  const leaderOf = (p: number): SimRaftNode | undefined =>
    [...(cluster?.nodes.values() ?? [])].find((n) => n.up && n.host?.isLeader(groupOf(p)));
  const txn: SimTxnEnv = {
    resolveTimeoutMs: RESOLVE_TIMEOUT_MS,
    resolveEveryMs: RESOLVE_EVERY_MS,
    observe: (node, e) => {
      // The protocol steps take turns: each crash waits for the next step of the list, as sent or as
      // answered, on the coordinator's side or the participant's; each seed starts further down the list.
      const [step, phase, who] = STEP_CRASHES[target % STEP_CRASHES.length] as [string, string, string];
      if (e.step !== step || e.phase !== phase || stepFaults.next() >= crashRate) return;
      if (crashSoon(who === 'coordinator' ? node : leaderOf(e.partition), `${step}.${phase}.${who}`)) target++;
    },
    onResolve: (_node, id, branch) => {
      // The transaction's coordinator is `node#incarnation.n`: dead when that process is gone.
      const [owner = '', inc = ''] = id.split('.')[0]?.split('#') ?? [];
      const o = cluster?.nodes.get(owner as NodeId);
      if (o?.up && String(o.incarnation) === inc) return;
      if (branch === 'abort') coverage.abortedByReader++;
      else coverage.committedByReader++;
    },
  };
  const rootCluster = root.fork();
  const cluster: RaftCluster = new RaftCluster(
    seed,
    {
      voters: 3,
      tickMs: 100,
      tickSkew: 0.05,
      raft: {
        electionTick: 10,
        heartbeatTick: 1,
        preVote: true,
        checkQuorum: true,
        readOnlyOption: 'safe',
        snapshotChunkBytes: 512,
      },
      snapshotEvery: 40,
      snapshotKeep: 5,
      diskLatencyMs: [0.2, 2],
      links: { minDelay: 1, maxDelay: 10, dropRate: 0.01, dupRate: 0.01, spikeRate: 0.005, spikeDelay: 300 },
      groups: PARTITIONS - 1,
      transactions: txn,
    },
    RaftCluster.randoms(rootCluster),
    replay,
  );
  const c = cluster;
  const ran: Ran[] = [];
  const replies: Record<string, number> = {};
  let stopped = false;
  let next = 0;
  // Transfers: 2 or 3 accounts of distinct partitions, deltas summing to zero, a journal key per partition.
  const transfer = (): void => {
    if (stopped) return;
    const nodes = c.upNodes().filter((n) => n.coordinator !== undefined);
    const node = nodes[work.int(0, Math.max(0, nodes.length - 1))];
    if (node?.coordinator !== undefined) {
      const id = next++;
      const parts = [0, 1, 2].filter(() => work.next() < 0.7);
      while (parts.length < 2) {
        const p = work.int(0, 2);
        if (!parts.includes(p)) parts.push(p);
      }
      const keys = parts.map((p) => accounts[p]![work.int(0, ACCOUNTS_PER_PARTITION - 1)]!);
      const deltas = keys.map(() => BigInt(work.int(1, 50)));
      deltas[deltas.length - 1] = -deltas.slice(0, -1).reduce((a, b) => a + b, 0n);
      const journal = (branch: string) => parts.map((p) => keysOf(slots, p, `j${id}${branch}.`, 1)[0]!);
      const r: Ran = { id, success: journal('s'), failure: journal('f'), outcome: 'unknown' };
      const set = (k: string): KvClientWrite => ({
        op: 'set',
        key: enc.encode(k),
        value: enc.encode('1'),
        condition: 'always',
        expiry: { kind: 'none' },
        returnOld: false,
      });
      // A fifth of them compare a version no account has: their failure branch applies.
      const failing = work.next() < 0.2;
      const req: TxnRequest = {
        compares: failing ? [{ key: enc.encode(keys[0]!), compare: { kind: 'version', value: 1e9 } }] : [],
        success: [
          ...keys.map((k, i): KvClientWrite => ({ op: 'incr', key: enc.encode(k), delta: deltas[i]! })),
          ...r.success.map(set),
        ],
        failure: r.failure.map(set),
      };
      ran.push(r);
      void node.coordinator.run(req).then((reply: TxnReply) => {
        const kind =
          reply.type === 'txn' ? 'txn' : `${reply.type} ${reply.message.replace(/n\d+#\d+\.\d+/g, 'T').slice(0, 160)}`;
        replies[kind] = (replies[kind] ?? 0) + 1;
        if (reply.type === 'txn') r.outcome = reply.succeeded ? 'success' : 'failure';
        else if (reply.type === 'error' || (reply.type === 'failure' && reply.message.includes('was not applied')))
          r.outcome = 'none';
      });
    }
    c.scheduler.after(work.int(30, 150), transfer);
  };
  // Faults besides the step crashes: a node crashed or cut off for a while, one at a time.
  const fault = (): void => {
    if (stopped) return;
    const nodes = [...c.nodes.values()];
    const n = nodes[faults.int(0, nodes.length - 1)]!;
    if (down().length === 0 && n.up && c.scheduler.now() >= lastCrash + CRASH_GAP_MS) {
      lastCrash = c.scheduler.now();
      if (faults.next() < 0.6) {
        n.crash();
        c.scheduler.after(faults.int(200, 1500), () => n.restart());
      } else {
        const others = nodes.filter((o) => o !== n).map((o) => o.id);
        c.network.partition([n.id], others);
        c.scheduler.after(faults.int(200, 1500), () => c.network.heal());
      }
    }
    c.scheduler.after(faults.int(1_000, 3_000), fault);
  };
  // Always: a stable double read of every account (mod revisions unchanged) sums to zero.
  let stableReads = 0;
  const readAll = async (n: SimRaftNode): Promise<{ sum: bigint; revs: string } | undefined> => {
    const parts = await Promise.all(
      accounts.map((keys, p) =>
        n.services[p]!.executeAll([
          { kind: 'read', op: 'mget', keys: keys.map((k) => enc.encode(k)) },
          { kind: 'read', op: 'revisions', keys: keys.map((k) => enc.encode(k)) },
        ]),
      ),
    );
    let sum = 0n;
    let revs = '';
    for (const [values, rev] of parts as [KvResponse, KvResponse][]) {
      if (values.type !== 'array' || rev.type !== 'array') return undefined;
      for (const v of values.values) sum += v === null ? 0n : BigInt(dec.decode(v));
      revs += rev.values.map((v) => (v === null ? '-' : dec.decode(v))).join(',');
      revs += ';';
    }
    return { sum, revs };
  };
  const check = (): void => {
    if (stopped) return;
    const n = c.upNodes()[0];
    if (n !== undefined && n.services.length === PARTITIONS) {
      void (async () => {
        const first = await readAll(n);
        const second = first && (await readAll(n));
        if (first && second && first.revs === second.revs) {
          stableReads++;
          if (second.sum !== 0n)
            fail(`a stable read of every account sums to ${second.sum}, not 0 (revisions ${second.revs})`);
        }
      })().catch((err) => {
        if (!(err instanceof InvariantViolationError))
          violation ??= new InvariantViolationError('transaction run', String(err), c.position());
      });
    }
    // No intent outlives its deadline by more than the slack, on any group's leader.
    for (const node of c.upNodes()) {
      node.services.forEach((_s, p) => {
        if (!node.host?.isLeader(groupOf(p))) return;
        const m = node.machines()[p]!;
        for (const i of m.intents()) {
          if (i.deadline + INTENT_SLACK_MS < m.logTime) {
            fail(
              `an intent of ${i.txn} on partition ${p} outlived its deadline ${i.deadline} by ${m.logTime - i.deadline} ms`,
            );
          }
        }
      });
    }
    c.scheduler.after(250, check);
  };
  c.scheduler.after(1_500, transfer);
  c.scheduler.after(2_000, fault);
  c.scheduler.after(2_000, check);
  await c.run(simMs);
  if (violation) throw violation;
  stopped = true;
  c.network.heal();
  c.network.setFaults({ dropRate: 0, dupRate: 0, spikeRate: 0 });
  for (const n of c.nodes.values()) n.restart();
  // Settle: every coordinator's or resolver's work done, every intent past its deadline swept.
  await c.run(simMs + RESOLVE_TIMEOUT_MS + 8_000);
  if (violation) throw violation;
  // The final state, from each group's leader.
  const values = new Map<string, Uint8Array | undefined>();
  for (let p = 0; p < PARTITIONS; p++) {
    const leader = leaderOf(p);
    if (leader === undefined) fail(`partition ${p} has no leader after settling`);
    const m = (leader as SimRaftNode).machines()[p]!;
    const left = m.intents();
    if (left.length > 0) fail(`partition ${p} still holds ${left.length} intents after settling (of ${left[0]!.txn})`);
    for (const r of ran)
      for (const k of [...r.success, ...r.failure])
        if (slots.partitionOfKey(enc.encode(k)) === p) values.set(k, m.get(enc.encode(k), Number.MAX_SAFE_INTEGER / 2));
    for (const k of accounts[p]!) values.set(k, m.get(enc.encode(k), 0));
  }
  let sum = 0n;
  for (const keys of accounts)
    for (const k of keys) sum += values.get(k) === undefined ? 0n : BigInt(dec.decode(values.get(k)));
  if (sum !== 0n) fail(`the accounts sum to ${sum}, not 0, after settling`);
  let committed = 0;
  let notApplied = 0;
  let unknown = 0;
  for (const r of ran) {
    for (const [branch, keys] of [
      ['success', r.success],
      ['failure', r.failure],
    ] as const) {
      const present = keys.filter((k) => values.get(k) !== undefined).length;
      if (present !== 0 && present !== keys.length)
        fail(`transaction ${r.id} applied ${present} of its ${keys.length} ${branch} writes`);
      const want = r.outcome === branch ? keys.length : r.outcome === 'unknown' ? present : 0;
      if (present !== want)
        fail(
          `transaction ${r.id} answered ${r.outcome} but its ${branch} branch shows ${present} of ${keys.length} writes`,
        );
    }
    if (r.outcome === 'success' || r.outcome === 'failure') committed++;
    else if (r.outcome === 'none') notApplied++;
    else unknown++;
  }
  return { seed, committed, notApplied, unknown, stableReads, replies, coverage, events: c.scheduler.executed };
}
