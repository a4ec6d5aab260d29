import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Command, Option } from 'commander';

/** Exit statuses of the client commands (`cohort help exit-codes` lists them). */
export const EXIT = {
  ok: 0,
  /** The node answered an error, or the answer was not understood. */
  failed: 1,
  usage: 2,
  /** `kv get`: the key does not exist. */
  notFound: 4,
  /** A cluster operation or restore refused as unsafe or pointless; nothing changed. */
  refused: 5,
  /** The node cannot be reached, or the cluster cannot serve now (CLUSTERDOWN, no leader). */
  unavailable: 6,
} as const;

export const EXIT_CODES_HELP = `
Exit status:
  0  success
  1  the node answered an error
  2  bad usage (unknown flag, missing argument, bad value)
  4  kv get: the key does not exist
  5  refused: the operation would be unsafe or has nothing to do; nothing changed
  6  unavailable: the node cannot be reached, or the cluster cannot serve now (CLUSTERDOWN, no leader)`;

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

interface Target {
  http: string;
  timeoutMs: string;
}

interface ApiError {
  code?: string;
  /** A refusal's closed reason code (e.g. QUORUM_ALIVE), when it has one. */
  reason?: string;
  message?: string;
  leader?: string;
  leaderHttp?: string;
}

/** What to do about an error code, appended to its message. */
const HINTS: Record<string, string> = {
  CLUSTERDOWN: 'the cluster has lost its quorum: start the unreachable members (cohort status lists them), then retry',
  NOT_LEADER: 'no leader is known right now: retry in a moment (cohort status shows the election)',
  TIMEOUT: 'the request timed out: the write may or may not have applied; check with cohort kv get',
  UNAVAILABLE: 'the node cannot serve this now: retry, or ask another node with --http',
};

function exitFor(status: number, code: string | undefined): number {
  if (status === 404 && code === 'NOT_FOUND') return EXIT.notFound;
  if (status === 409 && code === 'REFUSED') return EXIT.refused;
  if (status === 503 || status === 504) return EXIT.unavailable;
  if (status === 400) return EXIT.usage;
  return EXIT.failed;
}

function apiError(status: number, body: unknown, what: string): CliError {
  const e = ((body as { error?: ApiError } | undefined)?.error ?? {}) as ApiError;
  const code = `${e.code ?? `HTTP ${status}`}${e.reason ? ` (${e.reason})` : ''}`;
  const hint = e.code ? HINTS[e.code] : undefined;
  const message = `${what}: ${code}: ${e.message ?? 'no details'}${hint && !e.message?.includes('retry') ? ` (${hint})` : ''}`;
  return new CliError(message, exitFor(status, e.code));
}

function timeoutOf(t: Target): number {
  const ms = Number(t.timeoutMs);
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new CliError(`--timeout-ms must be a whole number of milliseconds above 0, got '${t.timeoutMs}'`, EXIT.usage);
  }
  return ms;
}

function checkAddress(http: string): void {
  if (!/^[^\s/:]+:\d+$|^\[[^\]]+\]:\d+$/.test(http)) {
    throw new CliError(`--http must be host:port (example: 127.0.0.1:8080), got '${http}'`, EXIT.usage);
  }
}

async function call(
  t: Target,
  method: string,
  path: string,
  init: { body?: unknown; raw?: RequestInit['body']; contentType?: string; http?: string } = {},
): Promise<Response> {
  const http = init.http ?? t.http;
  checkAddress(http);
  const headers: Record<string, string> = authHeader();
  let body: RequestInit['body'] | undefined;
  if (init.raw !== undefined) {
    body = init.raw;
    headers['content-type'] = init.contentType ?? 'application/octet-stream';
  } else if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers['content-type'] = 'application/json';
  }
  try {
    return await fetch(`http://${http}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
      ...(init.raw instanceof Readable ? { duplex: 'half' } : {}),
      signal: AbortSignal.timeout(timeoutOf(t)),
    } as RequestInit);
  } catch (err) {
    if (err instanceof CliError) throw err;
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${t.timeoutMs} ms` : (e.cause?.code ?? e.message);
    throw new CliError(
      `cannot reach a node at ${http} (${why}): is one running there? Pass --http host:port or set COHORT_HTTP`,
      EXIT.unavailable,
    );
  }
}

async function json(t: Target, method: string, path: string, body?: unknown, what = `${method} ${path}`) {
  const res = await call(t, method, path, body === undefined ? {} : { body });
  const out = await readJson(res, what);
  if (!res.ok) throw apiError(res.status, out, what);
  return out;
}

async function readJson(res: Response, what: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new CliError(
      `${what}: the node answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`,
      1,
    );
  }
}

/**
 * POSTs an admin request, following the answer's redirect to the leader once. With `untilLeader` (for
 * requests that may run twice, such as a leadership transfer, which ends once the target leads), while no
 * leader is known (NOT_LEADER naming none: an election is under way) it asks again every 200 ms until
 * `--timeout-ms` has passed.
 */
async function admin(
  t: Target,
  path: string,
  body: unknown,
  what: string,
  untilLeader = false,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutOf(t);
  for (;;) {
    let res = await call(t, 'POST', path, { body });
    let out = await readJson(res, what);
    let e = (out.error ?? {}) as ApiError;
    if (res.status === 503 && e.code === 'NOT_LEADER' && e.leaderHttp) {
      res = await call(t, 'POST', path, { body, http: e.leaderHttp });
      out = await readJson(res, what);
      e = (out.error ?? {}) as ApiError;
    }
    if (res.ok) return out;
    const electing = untilLeader && res.status === 503 && e.code === 'NOT_LEADER' && !e.leaderHttp;
    if (!electing || Date.now() + ELECTION_RETRY_MS > deadline) throw apiError(res.status, out, what);
    await new Promise((r) => setTimeout(r, ELECTION_RETRY_MS));
  }
}

/** How long an admin command waits before asking again while an election is under way. */
const ELECTION_RETRY_MS = 200;

const say = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

/** Wraps an action: a CliError (or anything thrown) becomes a message on stderr and an exit status. */
function run<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const code = err instanceof CliError ? err.exitCode : EXIT.failed;
      process.stderr.write(`cohort: ${(err as Error).message}\n`);
      process.exit(code);
    }
  };
}

function targetOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--http <host:port>', 'HTTP address of a node to ask').env('COHORT_HTTP').default('127.0.0.1:8080'),
    )
    .addOption(
      new Option('--timeout-ms <n>', 'give up after this many milliseconds').env('COHORT_TIMEOUT_MS').default('10000'),
    );
}

function example(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText('after', `\nExample:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n${EXIT_CODES_HELP}\n`);
}

const enc = (key: string): string => encodeURIComponent(key);

function partitionNumber(p: string): number {
  const n = Number(p.replace(/^p/, ''));
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new CliError(`<partition> must be a partition number (example: 3 or p3), got '${p}'`, EXIT.usage);
  }
  return n;
}

interface MemberRow {
  id: string;
  role: string;
  leader?: boolean;
  state?: string;
  http?: string;
  peer?: string;
  reachable?: boolean;
}

/** Registers the operations commands: status, members, kv, cluster, backup, restore. */
export function registerOpsCommands(program: Command): void {
  example(
    targetOptions(
      program
        .command('status')
        .description("a node's view of the cluster: leader, members, quorum, readiness")
        .option('--json', 'print the raw JSON'),
    ),
    'cohort status --http 127.0.0.1:8080',
  ).action(
    run(async (o: Target & { json?: boolean }) => {
      const [status, cluster] = await Promise.all([json(o, 'GET', '/v1/status'), json(o, 'GET', '/v1/cluster')]);
      const readyRes = await call(o, 'GET', '/readyz');
      const ready = await readJson(readyRes, 'GET /readyz');
      if (o.json) {
        say(JSON.stringify({ status, cluster, ready }, null, 2));
        return;
      }
      const r = ready.error as ApiError | undefined;
      say(`node      ${status.id}  (${status.role}, term ${status.term})`);
      say(`leader    ${status.leader || 'none'}${cluster.leaderHttp ? `  http://${cluster.leaderHttp}` : ''}`);
      say(`applied   ${status.applied}  commit ${status.commit}  keys ${status.keys ?? '?'}`);
      say(`ready     ${ready.ready ? 'yes' : `no: ${r?.code}: ${r?.message}`}`);
      say('members');
      for (const m of (cluster.members ?? []) as MemberRow[]) {
        say(
          `  ${m.id.padEnd(10)} ${`${m.role}${m.leader ? ' (leader)' : ''}`.padEnd(17)} ${(m.state ?? '?').padEnd(8)} ${
            m.reachable === false ? 'unreachable' : 'reachable  '
          } ${m.http ? `http://${m.http}` : ''}`,
        );
      }
      if (!ready.ready) process.exitCode = EXIT.unavailable;
    }),
  );

  example(
    targetOptions(
      program
        .command('members')
        .description("a node's view of cluster membership (SWIM: alive, suspect, dead)")
        .option('--json', 'print the raw JSON'),
    ),
    'cohort members --http 127.0.0.1:8081',
  ).action(
    run(async (o: Target & { json?: boolean }) => {
      const body = (await json(o, 'GET', '/v1/members')) as {
        members: { id: string; address: string; state: string; incarnation: number }[];
      };
      if (o.json) say(JSON.stringify(body, null, 2));
      else {
        for (const m of body.members) {
          say(`${m.id.padEnd(12)} ${m.state.padEnd(8)} inc=${String(m.incarnation).padEnd(6)} ${m.address}`);
        }
      }
    }),
  );

  example(
    targetOptions(
      program
        .command('leave <node>')
        .description(
          'decommission <node>: the cluster moves its replicas (and so its leaderships) to other nodes; waits until it holds none, then it can be stopped',
        )
        .option('--no-wait', 'return once the node is marked leaving')
        .option('--wait-ms <n>', 'how long to wait for its replicas to move', '600000'),
    ),
    'cohort leave n4 --http 127.0.0.1:8080   # then stop n4',
  ).action(
    run(async (node: string, o: Target & { wait: boolean; waitMs: string }) => {
      const out = (await json(o, 'POST', '/v1/cluster/leave', { node }, `leave ${node}`)) as { replicas: number };
      say(`${node} is leaving: ${out.replicas} replica(s) to move`);
      if (!o.wait) return;
      const deadline = Date.now() + Number(o.waitMs);
      for (;;) {
        const m = (await json(o, 'GET', '/v1/meta')) as {
          partitions: { replicas: { node: string }[] }[];
        };
        const left = m.partitions.filter((p) => p.replicas.some((r) => r.node === node)).length;
        if (left === 0) {
          say(`${node} holds no replica any more: stop it now`);
          return;
        }
        if (Date.now() > deadline) {
          throw new CliError(
            `${node} still holds ${left} replica(s) after ${o.waitMs} ms; see cohort partitions`,
            EXIT.unavailable,
          );
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    }),
  );

  const partitions = program
    .command('partitions')
    .description(
      'the partition map: per partition its replicas (voter or learner), epoch and leader; transfer a leadership, move a replica',
    )
    .option('--json', 'print the raw JSON');
  example(
    targetOptions(partitions),
    'cohort partitions --http 127.0.0.1:8080',
    'cohort partitions transfer 3 n2',
    'cohort partitions move 3 --from n1 --to n4',
  ).action(
    run(async (o: Target & { json?: boolean }) => {
      const [m, local] = await Promise.all([json(o, 'GET', '/v1/meta'), json(o, 'GET', '/v1/partitions')]);
      if (o.json) {
        say(JSON.stringify({ meta: m, partitions: local.partitions }, null, 2));
        return;
      }
      const views = (local.partitions ?? []) as {
        partition: number;
        leader?: string;
        term?: number;
        stuck?: boolean;
        leaderForMs?: number;
        leaderlessForMs?: number;
        lastFailoverMs?: number;
      }[];
      const secs = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 0)} s`;
      const map = (m.partitions ?? []) as {
        replicas: { node: string; role: string }[];
        epoch: number;
        move?: { from: string; to: string };
      }[];
      say(`cluster ${String(m.clusterId) || '(not founded yet)'}`);
      map.forEach((p, i) => {
        const v = views.find((x) => x.partition === i);
        const replicas = p.replicas.map((r) => (r.role === 'voter' ? r.node : `${r.node} (learner)`)).join(', ');
        say(
          `p${i}`.padEnd(6) +
            `epoch ${String(p.epoch).padEnd(5)} leader ${(v?.leader || '?').padEnd(10)} ${replicas}` +
            (p.move ? `  (moving ${p.move.from} -> ${p.move.to})` : '') +
            (v?.leaderForMs !== undefined ? `  leader for ${secs(v.leaderForMs)}` : '') +
            (v?.leaderlessForMs !== undefined ? `  NO LEADER for ${secs(v.leaderlessForMs)}` : '') +
            (v?.lastFailoverMs !== undefined ? `, last failover ${secs(v.lastFailoverMs)}` : '') +
            (v?.stuck ? '  STUCK: proposals wait with no commit progress' : ''),
        );
      });
    }),
  );

  // The parent's --http and --timeout-ms are parsed wherever they appear: the subcommands read them with optsWithGlobals.
  example(
    targetOptions(
      partitions
        .command('transfer <partition> <node>')
        .description(
          "hand partition <partition>'s leadership to its voter <node> (asked of any node); waits until it leads",
        )
        .option('--json', 'print the raw JSON'),
    ),
    'cohort partitions transfer 3 n2',
  ).action(
    run(async (partition: string, node: string, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals() as Target & { json?: boolean };
      const p = partitionNumber(partition);
      const out = await admin(
        o,
        '/v1/admin/partitions/transfer-leader',
        { partition: p, node },
        `partitions transfer ${p} ${node}`,
        true,
      );
      say(o.json ? JSON.stringify(out, null, 2) : `p${p}: ${String(out.leader)} leads`);
    }),
  );
  example(
    targetOptions(
      partitions
        .command('catch-up <partition> <node>')
        .description(
          "make <node>'s replica of partition <partition> catch up now (asked of any node, done by the partition's leader; waits out an election): a snapshot when the leader's log no longer holds its next entry, else its missing appends resent",
        )
        .option('--json', 'print the raw JSON'),
    ),
    'cohort partitions catch-up 3 n2',
  ).action(
    run(async (partition: string, node: string, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals() as Target & { json?: boolean };
      const p = partitionNumber(partition);
      // Idempotent: asked again while the partition elects a leader (a replace or move may have removed it).
      const out = await admin(
        o,
        '/v1/admin/partitions/catch-up',
        { partition: p, node },
        `partitions catch-up ${p} ${node}`,
        true,
      );
      if (o.json) {
        say(JSON.stringify(out, null, 2));
        return;
      }
      const behind = Number(out.lastIndex) - Number(out.match);
      const what =
        out.action === 'snapshot'
          ? 'a snapshot is on its way'
          : out.action === 'probe'
            ? 'its missing entries are being resent'
            : 'it is caught up';
      say(
        `p${p}: ${node} was ${behind} entries behind (match ${String(out.match)}, last ${String(out.lastIndex)}): ${what}`,
      );
    }),
  );
  /** Records a move (or, without `to`, a forced replacement), then waits until placement carried it out. */
  const moveAndWait = async (
    o: Target & { wait: boolean; waitMs: string },
    p: number,
    from: string,
    to: string | undefined,
    what: string,
  ): Promise<void> => {
    const out = await json(o, 'POST', '/v1/admin/partitions/move', { partition: p, from, ...(to ? { to } : {}) }, what);
    const target = String(out.to);
    say(`p${p}: move from ${from} to ${target} recorded at epoch ${String(out.epoch)}`);
    if (!o.wait) return;
    const deadline = Date.now() + Number(o.waitMs);
    for (;;) {
      const m = (await json(o, 'GET', '/v1/meta')) as {
        partitions: { replicas: { node: string; role: string }[]; epoch: number; move?: unknown }[];
      };
      const e = m.partitions[p];
      const done =
        e !== undefined &&
        e.move === undefined &&
        !e.replicas.some((r) => r.node === from) &&
        e.replicas.some((r) => r.node === target && r.role === 'voter');
      if (done) {
        say(`p${p}: moved to ${target} (epoch ${e.epoch}; replicas ${e.replicas.map((r) => r.node).join(', ')})`);
        return;
      }
      if (Date.now() > deadline) {
        throw new CliError(`p${p}: the move is not done after ${o.waitMs} ms; see cohort partitions`, EXIT.unavailable);
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  example(
    targetOptions(
      partitions
        .command('move <partition>')
        .description(
          "move partition <partition>'s replica from one node to another: the cluster adds it as a learner, then promotes it and removes the source in one joint change (refused if the target holds it or a quorum would be lost); waits until done",
        )
        .requiredOption('--from <node>', 'the node whose replica moves')
        .requiredOption('--to <node>', 'the node that receives it')
        .option('--no-wait', 'return once the move is recorded')
        .option('--wait-ms <n>', 'how long to wait for the move to complete', '120000'),
    ),
    'cohort partitions move 3 --from n1 --to n4',
  ).action(
    run(async (partition: string, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals() as Target & { from: string; to: string; wait: boolean; waitMs: string };
      const p = partitionNumber(partition);
      await moveAndWait(o, p, o.from, o.to, `partitions move ${p} --from ${o.from} --to ${o.to}`);
    }),
  );
  example(
    targetOptions(
      partitions
        .command('replace <partition> <node>')
        .description(
          "force the replacement of <node>'s replica of partition <partition> now, without waiting for the grace period: the cluster picks a live node as placement would (no replica of it, an unused zone, least loaded), adds it as a learner, then promotes it and removes <node>'s replica in one joint change; waits until done",
        )
        .option('--no-wait', 'return once the replacement is recorded')
        .option('--wait-ms <n>', 'how long to wait for it to complete', '120000'),
    ),
    'cohort partitions replace 3 n2',
  ).action(
    run(async (partition: string, node: string, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals() as Target & { wait: boolean; waitMs: string };
      const p = partitionNumber(partition);
      await moveAndWait(o, p, node, undefined, `partitions replace ${p} ${node}`);
    }),
  );

  example(
    targetOptions(
      partitions
        .command('recover <partition>')
        .description(
          "UNSAFE: rebuild Raft partition <partition>, which lost a quorum of its replicas for good, from its most up-to-date live replica (or --from): that replica becomes its only voter, without consensus, and placement adds replicas back. Writes the lost replicas acknowledged past the survivor's log are gone. Prints the plan; goes ahead only with --yes or when you type the partition number",
        )
        .option(
          '--from <node>',
          'the live replica to rebuild from (default: the one with the longest log, then the most applied)',
        )
        .option('--yes', 'go ahead without asking (the plan is printed first)')
        .option('--json', 'print the raw JSON'),
    ),
    'cohort partitions recover 3',
    'cohort partitions recover 3 --from n2 --yes',
  ).action(
    run(async (partition: string, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals() as Target & { from?: string; yes?: boolean; json?: boolean };
      const p = partitionNumber(partition);
      const what = `partitions recover ${p}`;
      const body = { partition: p, ...(o.from ? { from: o.from } : {}) };
      const planned = await json(o, 'POST', '/v1/admin/partitions/recover', { ...body, confirm: false }, what);
      const plan = planned.plan as {
        epoch: number;
        voters: string[];
        lost: string[];
        live: { node: string; lastIndex: number; applied: number; commit: number }[];
        survivor: { node: string; lastIndex: number; applied: number; commit: number };
        dataLoss: string;
      };
      const at = (x: { lastIndex: number; applied: number; commit: number }): string =>
        `last index ${x.lastIndex}, applied ${x.applied}, commit ${x.commit}`;
      if (!o.json) {
        say(`UNSAFE RECOVERY of partition p${p} (epoch ${plan.epoch}, voters ${plan.voters.join(', ')})`);
        say(`  lost replicas:  ${plan.lost.join(', ')}`);
        say(`  rebuild from:   ${plan.survivor.node} (${at(plan.survivor)})`);
        for (const x of plan.live.filter((l) => l.node !== plan.survivor.node))
          say(`  also live:      ${x.node} (${at(x)}): dropped, placement re-adds it`);
        say(`  DATA LOSS:      ${plan.dataLoss}`);
        say(`  then:           ${plan.survivor.node} becomes the only voter; placement adds replicas back`);
      }
      if (!o.yes) {
        if (o.json) say(JSON.stringify(planned, null, 2));
        if (!process.stdin.isTTY) {
          throw new CliError(
            `not done: run again with --yes to rebuild p${p} from ${plan.survivor.node}`,
            EXIT.refused,
          );
        }
        const { createInterface } = await import('node:readline/promises');
        const rl = createInterface({ input: process.stdin, output: process.stdout });
        const answer = await rl.question(`Type the partition number (${p}) to go ahead: `);
        rl.close();
        if (answer.trim() !== String(p)) throw new CliError('not done: the answer did not confirm', EXIT.refused);
      }
      // The survivor shown is the one used: if another is now more up to date, the operator asks again.
      const out = await json(
        o,
        'POST',
        '/v1/admin/partitions/recover',
        { partition: p, from: plan.survivor.node, confirm: true },
        what,
      );
      if (o.json) {
        say(JSON.stringify({ plan, result: out }, null, 2));
        return;
      }
      say(
        `p${p}: rebuilt from ${String(out.survivor)}, its only voter now (term ${String(out.term)}, epoch ${String(out.epoch)}); placement adds replicas back: see cohort partitions`,
      );
    }),
  );

  const kv = program.command('kv').description('read and write keys through the HTTP API');
  example(
    targetOptions(
      kv
        .command('get <key>')
        .description('print the value of <key> (exit status 4 when it does not exist)')
        .option('--json', 'print the key record as JSON'),
    ),
    'cohort kv get user:1',
  ).action(
    run(async (key: string, o: Target & { json?: boolean }) => {
      const res = await call(o, 'GET', `/v1/kv/${enc(key)}`);
      const body = await readJson(res, `get ${key}`);
      if (res.status === 404) throw new CliError(`key '${key}' does not exist`, EXIT.notFound);
      if (!res.ok) throw apiError(res.status, body, `get ${key}`);
      say(o.json ? JSON.stringify(body) : shownValue(body));
    }),
  );
  example(
    targetOptions(
      kv
        .command('put <key> [value]')
        .description('set <key> to [value] (read from stdin when omitted or -)')
        .option('--ttl-ms <n>', 'expire the key after this many milliseconds'),
    ),
    'cohort kv put user:1 alice --ttl-ms 60000',
    'echo -n alice | cohort kv put user:1',
  ).action(
    run(async (key: string, value: string | undefined, o: Target & { ttlMs?: string }) => {
      let v = value;
      if (v === undefined || v === '-') {
        const parts: Buffer[] = [];
        for await (const p of process.stdin) parts.push(p as Buffer);
        v = Buffer.concat(parts).toString('utf8');
      }
      const body: { value: string; ttlMs?: number } = { value: v };
      if (o.ttlMs !== undefined) {
        const ttl = Number(o.ttlMs);
        if (!Number.isSafeInteger(ttl) || ttl <= 0) {
          throw new CliError(`--ttl-ms must be a whole number of milliseconds above 0, got '${o.ttlMs}'`, EXIT.usage);
        }
        body.ttlMs = ttl;
      }
      await json(o, 'PUT', `/v1/kv/${enc(key)}`, body, `put ${key}`);
      say('OK');
    }),
  );
  example(
    targetOptions(kv.command('del <key>').description('delete <key>; prints how many keys were deleted (0 or 1)')),
    'cohort kv del user:1',
  ).action(
    run(async (key: string, o: Target) => {
      const out = await json(o, 'DELETE', `/v1/kv/${enc(key)}`, undefined, `del ${key}`);
      say(String(out.deleted));
    }),
  );
  example(
    targetOptions(
      kv
        .command('range')
        .description('list keys by prefix or in [start, end), in key order, following continuations')
        .option('--prefix <p>', 'keys starting with <p>')
        .option('--start <key>', 'first key (inclusive)')
        .option('--end <key>', 'last key (exclusive)')
        .option('--limit <n>', 'at most <n> keys in all')
        .option('--keys-only', 'print keys only')
        .option('--json', 'print one JSON record per line'),
    ),
    'cohort kv range --prefix user: --limit 100',
    'cohort kv range --start a --end m --keys-only',
  ).action(
    run(
      async (
        o: Target & {
          prefix?: string;
          start?: string;
          end?: string;
          limit?: string;
          keysOnly?: boolean;
          json?: boolean;
        },
      ) => {
        if (o.prefix !== undefined && (o.start !== undefined || o.end !== undefined)) {
          throw new CliError('give --prefix, or --start/--end, not both', EXIT.usage);
        }
        let left = Number.POSITIVE_INFINITY;
        if (o.limit !== undefined) {
          left = Number(o.limit);
          if (!Number.isSafeInteger(left) || left <= 0) {
            throw new CliError(`--limit must be a whole number above 0, got '${o.limit}'`, EXIT.usage);
          }
        }
        let after: string | undefined;
        for (;;) {
          const q = new URLSearchParams();
          if (o.prefix !== undefined) q.set('prefix', o.prefix);
          if (o.start !== undefined) q.set('start', o.start);
          if (o.end !== undefined) q.set('end', o.end);
          q.set('limit', String(Math.min(left, 1000)));
          if (after !== undefined) q.set('after', after);
          const page = (await json(o, 'GET', `/v1/kv?${q}`, undefined, 'range')) as {
            kvs: { key: string; value: string }[];
            more?: boolean;
            next?: string;
          };
          if (!Array.isArray(page.kvs)) throw new CliError('range: the node answered without a kvs list', EXIT.failed);
          for (const r of page.kvs) {
            say(o.json ? JSON.stringify(r) : o.keysOnly ? r.key : `${r.key}\t${shownValue(r)}`);
          }
          left -= page.kvs.length;
          if (!page.more || left <= 0 || page.next === undefined) break;
          after = page.next;
        }
      },
    ),
  );
  example(
    targetOptions(
      kv
        .command('watch')
        .description(
          'print changes to a key or prefix as they happen (one line per event: revision, type, key, value); resumes after a dropped connection from the last revision seen',
        )
        .option('--key <key>', 'watch one key')
        .option('--prefix <p>', 'watch every key starting with <p>')
        .option('--from-revision <n>', 'replay events from this revision on')
        .option('--json', 'print each event as JSON'),
    ),
    'cohort kv watch --prefix user: --from-revision 1',
  ).action(
    run(async (o: Target & { key?: string; prefix?: string; fromRevision?: string; json?: boolean }) => {
      if ((o.key === undefined) === (o.prefix === undefined)) {
        throw new CliError('give exactly one of --key or --prefix', EXIT.usage);
      }
      let from = o.fromRevision;
      if (from !== undefined && !/^\d+$/.test(from)) {
        throw new CliError(`--from-revision must be a whole number, got '${from}'`, EXIT.usage);
      }
      // A prefix watch across partitions names its place by a resume token (every partition's revision,
      // joined by dots) instead of a revision: the stream's last one, given back when it resumes.
      let token: string | undefined;
      // Events printed since the last id (only a revision's last event carries one): a stream cut before
      // it sends their revision again when it resumes, and those already printed are skipped then.
      let unconfirmed = new Map<string, number>();
      let replayed = new Map<string, number>();
      for (let attempt = 0; ; attempt++) {
        const q = new URLSearchParams();
        if (o.key !== undefined) q.set('key', o.key);
        else q.set('prefix', o.prefix as string);
        if (token !== undefined) q.set('resume', token);
        else if (from !== undefined) q.set('fromRevision', from);
        checkAddress(o.http);
        let res: Response;
        try {
          res = await fetch(`http://${o.http}/v1/watch?${q}`, {
            headers: { accept: 'text/event-stream', ...authHeader() },
          });
        } catch (err) {
          if (attempt >= 5) {
            throw new CliError(
              `cannot reach a node at ${o.http} to watch: ${(err as Error).message}`,
              EXIT.unavailable,
            );
          }
          await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
          continue;
        }
        if (!res.ok || !res.body) {
          const body = await res.text();
          let parsed: unknown;
          try {
            parsed = JSON.parse(body);
          } catch {
            parsed = undefined;
          }
          throw apiError(res.status, parsed, 'watch');
        }
        attempt = 0;
        let buf = '';
        const decoder = new TextDecoder();
        for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(piece, { stream: true });
          for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let id: string | undefined;
            let type = 'message';
            const data: string[] = [];
            for (const line of block.split('\n')) {
              if (line.startsWith('id:')) id = line.slice(3).trim();
              else if (line.startsWith('event:')) type = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
            }
            // Only the last event of a revision carries an id, and a cross-partition stream opens with one.
            if (id !== undefined && /^\d+$/.test(id)) from = String(BigInt(id) + 1n);
            else if (id !== undefined && /^\d+(\.\d+)+$/.test(id)) token = id;
            if (data.length === 0) continue;
            const text = data.join('\n');
            let ev: Record<string, unknown> | undefined;
            try {
              ev = JSON.parse(text) as Record<string, unknown>;
            } catch {
              ev = undefined;
            }
            const key = ev?.key ?? (ev?.kv as { key?: string } | undefined)?.key;
            const seen = ev ? [ev.partition, ev.modRevision, ev.type, key].join('\u0000') : text;
            const again = replayed.get(seen) ?? 0;
            if (again > 0) replayed.set(seen, again - 1);
            if (id === undefined) unconfirmed.set(seen, (unconfirmed.get(seen) ?? 0) + 1);
            else {
              unconfirmed = new Map();
              replayed = new Map();
            }
            if (again > 0) continue;
            if (o.json) say(text);
            else {
              say(
                ev
                  ? `${id ?? String(ev.modRevision ?? '-')}\t${String(ev.type ?? type)}\t${String(key ?? '')}\t${String(ev.value ?? (ev.kv as { value?: string } | undefined)?.value ?? '')}`
                  : `${id ?? '-'}\t${type}\t${text}`,
              );
            }
          }
        }
        // The stream ended (the node restarted or closed it): resume from the revision after the last seen.
        // Printed and still unconfirmed: what this stream sent again, and what it had not sent again yet.
        for (const [k, n] of replayed) if (n > 0) unconfirmed.set(k, (unconfirmed.get(k) ?? 0) + n);
        replayed = unconfirmed;
        unconfirmed = new Map();
        process.stderr.write(
          `cohort: watch connection closed; resuming${token ? ` after ${token}` : from ? ` from revision ${from}` : ''}\n`,
        );
      }
    }),
  );

  const cluster = program
    .command('cluster')
    .description("change the group's membership (joint consensus underneath) and move its leadership");
  const ops: [string, string, string, string][] = [
    [
      'add',
      'add <node> as a learner: it receives the data but does not vote. Start it first with `cohort start --join`',
      'add',
      'cohort cluster add n4 --address 127.0.0.1:7004',
    ],
    [
      'promote',
      'make the learner <node> a voter, once it has caught up (refused if that would leave too few reachable voters)',
      'promote',
      'cohort cluster promote n4',
    ],
    [
      'remove',
      'remove <node> from the group (refused if that would leave too few reachable voters, or if <node> leads: transfer first)',
      'remove',
      'cohort cluster remove n3',
    ],
    [
      'transfer-leader',
      'hand the leadership to the voter <node>; waits until it leads',
      'transfer-leader',
      'cohort cluster transfer-leader n2',
    ],
  ];
  for (const [name, description, path, ex] of ops) {
    const cmd = cluster.command(`${name} <node>`).description(description).option('--json', 'print the raw JSON');
    if (name === 'add') {
      cmd.option(
        '--address <host:port>',
        "the new node's peer address (its --listen or --advertise); every member learns it with the change",
      );
    }
    example(targetOptions(cmd), ex).action(
      run(async (node: string, o: Target & { json?: boolean; address?: string }) => {
        const body = o.address === undefined ? { node } : { node, address: o.address };
        const out = await admin(o, `/v1/admin/cluster/${path}`, body, `cluster ${name} ${node}`);
        if (o.json) {
          say(JSON.stringify(out, null, 2));
          return;
        }
        const members = (out.members ?? []) as MemberRow[];
        const of = (role: string) =>
          members
            .filter((m) => m.role === role)
            .map((m) => m.id)
            .join(', ') || 'none';
        say(`OK: leader ${out.leader || 'none'}; voters ${of('voter')}; learners ${of('learner')}`);
        if (name === 'remove') say(`${node} no longer belongs to the group: stop its process and delete its data.`);
      }),
    );
  }

  example(
    targetOptions(
      program
        .command('backup <file>')
        .description(
          'write a consistent snapshot of the whole dataset to <file> (taken on the leader once it confirmed its leadership)',
        ),
    ),
    'cohort backup cohort-2026-01-01.backup',
  ).action(
    run(async (file: string, o: Target) => {
      // With several partitions, one section per partition, each taken on its leader.
      const layout = await call(o, 'GET', '/v1/partitions');
      const parts = layout.ok ? ((await readJson(layout, 'backup')).partitions as unknown[] | undefined) : undefined;
      const count = parts && parts.length > 1 ? parts.length : 0;
      const open = async (partition?: number) => {
        const path = `/v1/admin/backup${partition === undefined ? '' : `?partition=${partition}`}`;
        let res = await call(o, 'GET', path);
        if (res.status === 503) {
          const body = await readJson(res, 'backup');
          const e = (body.error ?? {}) as ApiError;
          if (e.code !== 'NOT_LEADER' || !e.leaderHttp) throw apiError(res.status, body, 'backup');
          res = await call(o, 'GET', path, { http: e.leaderHttp });
        }
        if (!res.ok || !res.body) throw apiError(res.status, await readJson(res, 'backup'), 'backup');
        return res;
      };
      const tmp = `${file}.partial`;
      try {
        const out = createWriteStream(tmp, { flags: 'wx' });
        await new Promise<void>((resolve, reject) => out.once('open', () => resolve()).once('error', reject));
        for (let p = 0; p < Math.max(count, 1); p++) {
          const res = await open(count > 0 ? p : undefined);
          await pipeline(Readable.fromWeb(res.body as never), out, { end: false });
        }
        await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
        const summary = await verifyBackup(tmp);
        renameSync(tmp, file);
        say(
          count > 0
            ? `backup of ${summary.keys} keys in ${count} partitions (each at its own index: ${summary.indexes.join(', ')}) written to ${file} (${statSync(file).size} bytes)`
            : `backup of ${summary.keys} keys at index ${summary.index} written to ${file} (${statSync(file).size} bytes)`,
        );
      } catch (err) {
        rmSync(tmp, { force: true });
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new CliError(`${tmp} exists: another backup may be running; remove it and retry`, EXIT.failed);
        }
        throw err instanceof CliError ? err : new CliError(`backup failed: ${(err as Error).message}`, EXIT.failed);
      }
    }),
  );

  example(
    targetOptions(
      program
        .command('restore <file>')
        .description(
          'write the keys of a backup into a cluster (through the leader); refused into a cluster that holds keys unless --force',
        )
        .option('--force', "write the backup's keys over existing ones (keys not in the backup stay)"),
    ),
    'cohort restore cohort-2026-01-01.backup --http 127.0.0.1:8080',
  ).action(
    run(async (file: string, o: Target & { force?: boolean }) => {
      let summary: { keys: number; index: number; indexes: number[] };
      try {
        summary = await verifyBackup(file);
      } catch (err) {
        throw new CliError(`${file} cannot be restored: ${(err as Error).message}`, EXIT.usage);
      }
      const path = `/v1/admin/restore${o.force ? '?force=true' : ''}`;
      const send = (http?: string) =>
        call(o, 'POST', path, {
          raw: createReadStream(file),
          contentType: 'application/vnd.cohort.backup',
          ...(http ? { http } : {}),
        });
      let res = await send();
      let body = await readJson(res, 'restore');
      const e = (body.error ?? {}) as ApiError;
      if (res.status === 503 && e.code === 'NOT_LEADER' && e.leaderHttp) {
        res = await send(e.leaderHttp);
        body = await readJson(res, 'restore');
      }
      if (!res.ok) throw apiError(res.status, body, 'restore');
      const r = body.restored as { keys: number; expired: number };
      say(
        `restored ${r.keys} keys from ${file} (backup at index ${summary.indexes.join(', ')})${r.expired > 0 ? `; ${r.expired} had expired and were skipped` : ''}`,
      );
    }),
  );
}

/** Reads a backup file through: header, every chunk's checksum, the end marker. */
async function verifyBackup(file: string): Promise<{ keys: number; index: number; indexes: number[] }> {
  const { readBackup } = await import('./backup-format.js');
  let keys = 0;
  const indexes: number[] = [];
  for await (const item of readBackup(createReadStream(file))) {
    if (item.type === 'header') indexes.push(item.header.index);
    else keys += item.chunk.rows.length;
  }
  return { keys, index: indexes[0] ?? 0, indexes };
}

/**
 * Gives every option of `program`'s commands an environment variable: the
 * client commands' `COHORT_<FLAG>` (COHORT_HTTP, COHORT_TIMEOUT_MS, ...);
 * `cohort start`'s `COHORT_<FLAG>` too, except that its listen addresses are
 * COHORT_HTTP_LISTEN and COHORT_RESP_LISTEN (COHORT_HTTP names the node the
 * client commands ask); `cohort dev`'s COHORT_DEV_<FLAG>. Output format and
 * --force flags take none.
 */
/** The bearer token of `COHORT_TOKEN`, for a node whose HTTP API requires one (`security.users[].tokens`). */
function authHeader(): Record<string, string> {
  const token = process.env.COHORT_TOKEN;
  return token ? { authorization: `Bearer ${token}` } : {};
}

export function addEnvVars(program: Command): void {
  // Confirmations of what cannot be undone (--force, --yes) are never taken from the environment.
  const skip = new Set(['--json', '--force', '--yes', '--keys-only', '--help', '--version']);
  const visit = (cmd: Command, top: string): void => {
    for (const opt of cmd.options) {
      if (!opt.long || skip.has(opt.long) || opt.envVar) continue;
      const flag = opt.long.slice(2).toUpperCase().replace(/-/g, '_');
      let name = `COHORT_${flag}`;
      if (top === 'start' && (flag === 'HTTP' || flag === 'RESP')) name = `COHORT_${flag}_LISTEN`;
      if (top === 'dev') name = `COHORT_DEV_${flag}`;
      opt.env(name);
    }
    for (const sub of cmd.commands) visit(sub, top);
  };
  for (const cmd of program.commands) visit(cmd, cmd.name());
}

/** A record's value as the CLI prints it: a hash's fields or a list's items (written over RESP) as JSON. */
function shownValue(r: { value?: unknown; kind?: unknown; fields?: unknown; items?: unknown }): string {
  if (r.kind === 'hash') return JSON.stringify(r.fields);
  if (r.kind === 'list') return JSON.stringify(r.items);
  return String(r.value);
}
