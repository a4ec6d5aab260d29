import { type MultiKvOperation, checkLinearizable, multiKvModel, prunedMultiKvHistory } from '@cohort/sim';
import { diagnose } from './cluster-diagnosis.js';
import { type ProcCluster, type ProcNode, poll } from './processes.js';
import { Rotating } from './rotating-redis.js';
import { type TxnAnswer, keysOverPartitions } from './txn-keys.js';

/** What a bank run saw (see {@link runBank}). */
export interface BankOutcome {
  reads: number;
  /** Reads of every balance whose sum was not the total. */
  badReads: string[];
  acknowledged: number;
  unknown: number;
  /** Accounts whose final balance is not what the applied transfers make it, and transfers applied wrongly. */
  finalMismatches: string[];
  /** The multi-key linearizability checker's verdict on the whole history. */
  linearizable: string;
  /** Counts and the faults' times, one line each. */
  summary(): string;
  /** The summary, the first bad reads and mismatches, and the tail of each node's log. */
  describe(): string;
}

/** Options of {@link runBank}. */
export interface BankOptions {
  partitions: number;
  accounts: number;
  durationMs: number;
  /** SIGKILL and restart nodes meanwhile. @default true */
  faults?: boolean;
}

const INITIAL = 100;
const INF = Number.POSITIVE_INFINITY;
const now = (): number => performance.now();

interface Transfer {
  id: string;
  from: string;
  to: string;
  amount: number;
  /** acked: answered applied; failed: answered not applied; unknown: no answer. */
  state: 'acked' | 'failed' | 'unknown';
}

/** Errors after which a transaction surely applied nothing. */
const NOTHING_APPLIED = /EXECABORT|TRYAGAIN|CROSSSLOT/;

/**
 * A bank on real processes: `accounts` accounts over every partition start
 * at 100; while two RESP clients transfer with WATCH + MGET + MULTI/EXEC and
 * one HTTP client with `POST /v1/txn` guarded by the values it read (each
 * transfer also sets a marker key of its own), a reader MGETs every balance,
 * and a partition leader, then the node the first RESP client's transfers go
 * through (their coordinator), are SIGKILLed and restarted. At the end it
 * checks that every read summed to the total, that the final balances are
 * what the applied transfers (acknowledged ones, and those of unknown outcome
 * whose marker exists) make them, and runs the history through the
 * multi-key linearizability checker.
 */
export async function runBank(cluster: ProcCluster, o: BankOptions): Promise<BankOutcome> {
  const accounts = keysOverPartitions('bank:', o.accounts, o.partitions);
  const total = INITIAL * o.accounts;
  const history: MultiKvOperation[] = [];
  const transfers: Transfer[] = [];
  const badReads: string[] = [];
  const notes: string[] = [];
  let reads = 0;
  /** Answers that applied nothing (nil EXECs, TRYAGAIN, failed comparisons) and errors, by kind. */
  const counts = new Map<string, number>();
  const count = (what: string): void => {
    counts.set(what, (counts.get(what) ?? 0) + 1);
  };
  const setup = new Rotating(cluster.nodes, 0);
  const t0 = now();
  await setup.r.mset(...accounts.flatMap((a) => [a, String(INITIAL)]));
  history.push({
    client: 0,
    input: { op: 'mset', entries: accounts.map((key) => ({ key, value: String(INITIAL) })) },
    output: 'ok',
    call: t0,
    ret: now(),
  });
  setup.close();
  const begun = now();
  // Clients run for durationMs, and while the faults last, and 2 s after them.
  let deadline = o.faults === false ? begun + o.durationMs : Number.POSITIVE_INFINITY;
  const pick = (): [string, string, number] => {
    const i = Math.floor(Math.random() * accounts.length);
    const j = (i + 1 + Math.floor(Math.random() * (accounts.length - 1))) % accounts.length;
    return [accounts[i]!, accounts[j]!, 1 + Math.floor(Math.random() * 10)];
  };

  const respTransfers = async (client: number, start: number): Promise<void> => {
    const c = new Rotating(cluster.nodes, start);
    for (let seq = 0; now() < deadline; seq++) {
      const [from, to, amount] = pick();
      const id = `${client}.${seq}`;
      const mark = `mark:${id}`;
      const call = now();
      let vs: (string | null)[];
      try {
        await c.r.watch(from, to);
        vs = await c.r.mget(from, to);
      } catch (err) {
        count(`WATCH/MGET ${String(err).slice(0, 60)}`);
        c.rotate();
        continue;
      }
      const [vf, vt] = vs.map(Number) as [number, number];
      const t: Transfer = { id, from, to, amount, state: 'unknown' };
      const input: MultiKvOperation['input'] = {
        op: 'txn',
        compare: [
          { key: from, value: String(vf) },
          { key: to, value: String(vt) },
        ],
        success: [
          { op: 'set', key: from, value: String(vf - amount) },
          { op: 'set', key: to, value: String(vt + amount) },
          { op: 'set', key: mark, value: '1' },
        ],
        failure: [],
      };
      try {
        const res = await c.r
          .multi()
          .set(from, String(vf - amount))
          .set(to, String(vt + amount))
          .set(mark, '1')
          .exec();
        // Nil: a watched key changed, nothing applied (not recorded: WATCH compares revisions, not values).
        if (res === null) {
          count('nil EXEC');
          continue;
        }
        if (res.some(([err]) => err !== null)) throw new Error(`EXEC answered ${JSON.stringify(res)}`);
        t.state = 'acked';
        transfers.push(t);
        history.push({ client, input, output: { succeeded: true, values: [] }, call, ret: now() });
      } catch (err) {
        count(`EXEC ${String(err).slice(0, 60)}`);
        if (NOTHING_APPLIED.test(String(err))) continue;
        transfers.push(t);
        history.push({ client: 1000 + history.length, input, output: undefined, call, ret: INF });
        c.rotate();
      }
    }
    c.close();
  };

  const httpTransfers = async (client: number, start: number): Promise<void> => {
    let at = start;
    const post = async (body: unknown): Promise<{ status: number; json: TxnAnswer }> => {
      const node = cluster.nodes[at % cluster.nodes.length]!;
      const res = await fetch(`http://127.0.0.1:${node.http}/v1/txn`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(8000),
      });
      return { status: res.status, json: (await res.json()) as TxnAnswer };
    };
    for (let seq = 0; now() < deadline; seq++) {
      const [from, to, amount] = pick();
      const id = `${client}.${seq}`;
      const mark = `mark:${id}`;
      const call = now();
      let vf: number;
      let vt: number;
      try {
        // A transaction of reads only: both balances at one instant.
        const read = await post({ success: [{ get: { key: from } }, { get: { key: to } }] });
        if (read.status !== 200) throw new Error(JSON.stringify(read.json));
        const values = read.json.results.map((r) => r.value ?? '');
        history.push({ client, input: { op: 'mget', keys: [from, to] }, output: values, call, ret: now() });
        [vf, vt] = values.map(Number) as [number, number];
      } catch (err) {
        count(`HTTP read ${String(err).slice(0, 80)}`);
        at++;
        continue;
      }
      const compare = [
        { key: from, value: String(vf) },
        { key: to, value: String(vt) },
      ];
      const success = [
        { op: 'set' as const, key: from, value: String(vf - amount) },
        { op: 'set' as const, key: to, value: String(vt + amount) },
        { op: 'set' as const, key: mark, value: '1' },
      ];
      const input: MultiKvOperation['input'] = { op: 'txn', compare, success, failure: [] };
      const t: Transfer = { id, from, to, amount, state: 'unknown' };
      try {
        const res = await post({
          compare: compare.map((c) => ({ key: c.key, target: 'value', value: c.value })),
          success: success.map((s) => ({ put: { key: s.key, value: s.value } })),
        });
        if (res.status === 200) {
          t.state = res.json.succeeded ? 'acked' : 'failed';
          transfers.push(t);
          history.push({ client, input, output: { succeeded: res.json.succeeded, values: [] }, call, ret: now() });
          continue;
        }
        if (res.status === 503 && res.json.error?.code === 'TRYAGAIN') {
          count('HTTP TRYAGAIN');
          continue;
        }
        throw new Error(JSON.stringify(res.json));
      } catch (err) {
        count(`HTTP txn ${String(err).slice(0, 80)}`);
        transfers.push(t);
        history.push({ client: 1000 + history.length, input, output: undefined, call, ret: INF });
        at++;
      }
    }
  };

  const reader = async (client: number, start: number): Promise<void> => {
    const c = new Rotating(cluster.nodes, start);
    while (now() < deadline) {
      const call = now();
      let values: (string | null)[];
      try {
        values = await c.r.mget(...accounts);
      } catch (err) {
        count(`reader ${String(err).slice(0, 60)}`);
        c.rotate();
        continue;
      }
      reads++;
      const sum = values.reduce((s, v) => s + Number(v), 0);
      if (sum !== total) badReads.push(`${values.join(',')} sums to ${sum}`);
      history.push({
        client,
        input: { op: 'mget', keys: accounts },
        output: values.map((v) => v ?? ''),
        call,
        ret: now(),
      });
    }
    c.close();
  };

  const faults = async (): Promise<void> => {
    const started = now();
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const upAgain = async (n: ProcNode) => {
      await poll(`${n.id} serving again`, 45_000, async () => ((await cluster.status(n)) ? true : undefined));
      notes.push(`t=${Math.round(now() - started)}ms ${n.id} serves again`);
    };
    await pause(1500);
    // A partition leader (another node than the coordinator killed next, when one leads a partition) ...
    const coordinator = cluster.nodes[1]!;
    const view = (await fetch(`http://127.0.0.1:${cluster.nodes[0]!.http}/v1/partitions`).then((r) => r.json())) as {
      partitions: { leader: string }[];
    };
    const led = view.partitions.findIndex((q) => q.leader !== '' && q.leader !== coordinator.id);
    const p = led >= 0 ? led : 0;
    const leader = cluster.nodes.find((n) => n.id === view.partitions[p]!.leader) ?? cluster.nodes[0]!;
    notes.push(`t=${Math.round(now() - started)}ms SIGKILL ${leader.id}, leader of p${p}`);
    await cluster.kill(leader);
    await pause(1000);
    cluster.start(leader);
    await upAgain(leader);
    await pause(1000);
    // ... then the node the first RESP client's transfers go through: their coordinator.
    notes.push(`t=${Math.round(now() - started)}ms SIGKILL ${coordinator.id}, the coordinator of client 1`);
    await cluster.kill(coordinator);
    await pause(1000);
    cluster.start(coordinator);
    await upAgain(coordinator);
    deadline = Math.max(begun + o.durationMs, now() + 2000);
  };

  await Promise.all([
    respTransfers(1, 1),
    respTransfers(2, 2),
    httpTransfers(3, 2),
    reader(4, 0),
    o.faults === false ? Promise.resolve() : faults(),
  ]);

  // Every node back: read the balances and the markers of transfers of unknown outcome (reads resolve intents).
  const last = new Rotating(cluster.nodes, 0);
  const finalCall = now();
  let lastError = '';
  const final = await poll('a final read of every balance', 30_000, async () => {
    try {
      return await last.r.mget(...accounts);
    } catch (err) {
      lastError = String(err);
      last.rotate();
      return undefined;
    }
  }).catch(async (err: Error) => {
    throw new Error(
      `${err.message}; the last error: ${lastError}\n${notes.join('\n')}\n${await diagnose(cluster, accounts)}`,
    );
  });
  history.push({
    client: 5,
    input: { op: 'mget', keys: accounts },
    output: final.map((v) => v ?? ''),
    call: finalCall,
    ret: now(),
  });
  const marked = new Map<string, boolean>();
  for (const t of transfers) {
    const exists = await poll(`marker of ${t.id}`, 30_000, async () => {
      try {
        return await last.r.exists(`mark:${t.id}`);
      } catch {
        last.rotate();
        return undefined;
      }
    });
    marked.set(t.id, exists === 1);
  }
  last.close();

  const finalMismatches: string[] = [];
  const expected = new Map(accounts.map((a) => [a, INITIAL]));
  for (const t of transfers) {
    const applied = marked.get(t.id)!;
    if (t.state === 'acked' && !applied) finalMismatches.push(`acknowledged transfer ${t.id} has no marker`);
    if (t.state === 'failed' && applied) finalMismatches.push(`failed transfer ${t.id} has a marker`);
    if (!applied) continue;
    expected.set(t.from, expected.get(t.from)! - t.amount);
    expected.set(t.to, expected.get(t.to)! + t.amount);
  }
  accounts.forEach((a, i) => {
    if (Number(final[i]) !== expected.get(a)) {
      finalMismatches.push(`${a} holds ${final[i]}, the applied transfers make it ${expected.get(a)}`);
    }
  });
  const verdict = checkLinearizable(multiKvModel, prunedMultiKvHistory(history), { maxSteps: 3_000_000 });
  const acknowledged = transfers.filter((t) => t.state === 'acked').length;
  const unknown = transfers.filter((t) => t.state === 'unknown').length;
  const applied = transfers.filter((t) => marked.get(t.id)).length;
  const summary = (): string =>
    [
      `${reads} reads, ${transfers.length} transfers (${acknowledged} acknowledged, ${unknown} of unknown outcome, ${applied} applied), ${history.length} operations checked: ${verdict.result}`,
      ...notes,
      ...[...counts].map(([what, n]) => `${n} × ${what}`),
    ].join('\n');
  return {
    reads,
    badReads,
    acknowledged,
    unknown,
    finalMismatches,
    linearizable: verdict.result === 'unknown' ? `unknown: ${verdict.reason}` : verdict.result,
    summary,
    describe: () =>
      [
        summary(),
        ...badReads.slice(0, 5),
        ...finalMismatches.slice(0, 5),
        ...cluster.nodes.map((n) => `${n.id}: ${n.log.slice(-1500)}`),
      ].join('\n'),
  };
}
