import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Interface, createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NODE_RUNTIME_FLAGS } from './runtime-flags.js';

/** Options of {@link runDevCluster}. */
export interface DevClusterOptions {
  /** Data root; node `nK` keeps its data in `<dir>/nK` and its log in `<dir>/nK.log`. */
  dir: string;
  nodes: number;
  /** Ports of the first node; node K uses port + K - 1. */
  respPort: number;
  httpPort: number;
  peerPort: number;
  logLevel: string;
  /** Partitions of the key space (`--partitions`); 1 when absent. */
  partitions?: number;
}

interface DevNode {
  id: string;
  resp: string;
  http: string;
  logFile: string;
  args: string[];
  child: ChildProcess;
  exited: boolean;
}

interface StatusView {
  id: string;
  role: string;
  term: number;
  leader: string;
  quorum?: { state: string; unreachable: string[] };
}

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function lastLines(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

async function statusOf(n: DevNode): Promise<StatusView | undefined> {
  if (n.exited) return undefined;
  try {
    const res = await fetch(`http://${n.http}/v1/status`, { signal: AbortSignal.timeout(1000) });
    return (await res.json()) as StatusView;
  } catch {
    return undefined;
  }
}

/**
 * The cluster's state as the running nodes report it: the leader one of them
 * says it is (or most of them name), else why there is none.
 */
function summarize(views: StatusView[]): { key: string; line: string } {
  const leading = views.find((v) => v.role === 'leader');
  if (leading) return { key: `leader ${leading.id} ${leading.term}`, line: `${leading.id} (term ${leading.term})` };
  const lost = views.find((v) => v.quorum?.state === 'lost');
  if (lost && views.every((v) => v.quorum?.state !== 'ok')) {
    const unreachable = lost.quorum?.unreachable ?? [];
    return {
      key: `lost ${unreachable.join(',')}`,
      line: `none: the cluster lost its quorum (${unreachable.join(', ')} unreachable); restart them: ${unreachable
        .map((id) => `"restart ${id}"`)
        .join(', ')}`,
    };
  }
  return { key: 'electing', line: 'none yet: an election is under way' };
}

const HELP = `commands (type here, then Enter):
  status             each node's role, term and leader
  kill <id|leader>   SIGKILL a node (the others keep running)
  restart <id>       start a node that exited, on its data
  quit               stop every node (as Ctrl-C)`;

/**
 * Runs a local cluster of `cohort start` child processes until SIGINT,
 * SIGTERM or `quit`, then stops them all and resolves with the exit status.
 * A node that dies leaves the others running: the launcher says so and how
 * to restart it (`restart <id>` on its standard input), and prints each
 * leader change as it sees it. A second run on the same directory reuses the
 * data.
 */
export async function runDevCluster(o: DevClusterOptions): Promise<number> {
  const root = resolve(o.dir);
  mkdirSync(root, { recursive: true });
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  const ids = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`);
  const peers = ids.map((id, i) => `${id}=127.0.0.1:${o.peerPort + i}`).join(',');
  const nodes: DevNode[] = [];
  let stopping = false;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  const watcher: { timer?: ReturnType<typeof setInterval> } = {};
  let input: Interface | undefined;

  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
    if (watcher.timer) clearInterval(watcher.timer);
    input?.close();
    say('stopping the cluster...');
    for (const n of nodes) if (!n.exited) n.child.kill('SIGTERM');
    const killer = setTimeout(() => {
      for (const n of nodes) if (!n.exited) n.child.kill('SIGKILL');
    }, 10_000);
    const check = (): void => {
      if (nodes.every((n) => n.exited)) {
        clearTimeout(killer);
        resolveDone(code);
      }
    };
    for (const n of nodes) n.child.once('exit', check);
    check();
  };
  process.on('SIGINT', () => stopAll(0));
  process.on('SIGTERM', () => stopAll(0));

  const spawnNode = (node: Omit<DevNode, 'child' | 'exited'> & Partial<DevNode>): DevNode => {
    const log = createWriteStream(node.logFile, { flags: 'a' });
    const child = spawn(process.execPath, [...NODE_RUNTIME_FLAGS, cli, ...node.args], {
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    child.stderr?.pipe(log);
    const n = node as DevNode;
    n.child = child;
    n.exited = false;
    child.on('exit', (code, signal) => {
      n.exited = true;
      if (stopping) return;
      const alive = nodes.filter((x) => !x.exited).map((x) => x.id);
      say(
        `node ${n.id} exited (${signal ?? `code ${code}`}); ${alive.length > 0 ? `${alive.join(', ')} keep running` : 'no node is running'}.`,
      );
      if (signal === null) {
        say(`last lines of ${n.logFile}:`);
        say(lastLines(n.logFile, 5));
      }
      say(`restart it: type "restart ${n.id}" and Enter`);
    });
    return n;
  };

  ids.forEach((id, i) => {
    const resp = `127.0.0.1:${o.respPort + i}`;
    const http = `127.0.0.1:${o.httpPort + i}`;
    const logFile = join(root, `${id}.log`);
    const args = ['start', '--id', id, '--data-dir', join(root, id), '--peers', peers, '--resp', resp, '--http', http];
    args.push('--log-level', o.logLevel);
    if (o.partitions !== undefined) args.push('--partitions', String(o.partitions));
    nodes.push(spawnNode({ id, resp, http, logFile, args }));
  });

  const find = (id: string): DevNode | undefined => nodes.find((n) => n.id === id);
  const command = async (line: string): Promise<void> => {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (!cmd) return;
    if (cmd === 'quit' || cmd === 'exit') return stopAll(0);
    if (cmd === 'status') {
      for (const n of nodes) {
        const s = await statusOf(n);
        say(
          `  ${n.id}  ${n.exited ? 'exited' : s ? `${s.role.padEnd(12)} term ${s.term}  leader ${s.leader || 'none'}` : 'not answering'}`,
        );
      }
      return;
    }
    if (cmd === 'kill' && arg) {
      let target = find(arg);
      if (arg === 'leader') {
        const views = (await Promise.all(nodes.map(statusOf))).filter((v): v is StatusView => v !== undefined);
        target = find(views.find((v) => v.role === 'leader')?.id ?? '');
      }
      if (!target) return say(`no node ${arg} is known${arg === 'leader' ? ' to lead right now' : ''}`);
      if (target.exited) return say(`${target.id} is not running`);
      say(`killing ${target.id} (SIGKILL)`);
      target.child.kill('SIGKILL');
      return;
    }
    if (cmd === 'restart' && arg) {
      const target = find(arg);
      if (!target) return say(`no node ${arg}; the nodes are ${ids.join(', ')}`);
      if (!target.exited) return say(`${target.id} is running`);
      spawnNode(target);
      say(`restarted ${target.id} on its data`);
      return;
    }
    say(HELP);
  };

  say(`cohort dev: ${o.nodes} nodes, data in ${root}`);
  for (const n of nodes) say(`  ${n.id}  RESP ${n.resp}  HTTP http://${n.http}  log ${n.logFile}`);

  // Commands come on standard input, when there is one.
  input = createInterface({ input: process.stdin, terminal: false });
  input.on('line', (line) => {
    command(line).catch((err: Error) => say(`command failed: ${err.message}`));
  });
  // Without a terminal or a pipe, standard input ends at once: the nodes keep running until a signal.
  input.on('close', () => {
    input = undefined;
  });

  let shown: string | undefined;
  let started = false;
  const started15 = Date.now();
  const watch = async (): Promise<void> => {
    const views = (await Promise.all(nodes.map(statusOf))).filter((v): v is StatusView => v !== undefined);
    if (stopping || views.length === 0) return;
    const { key, line } = summarize(views);
    if (!started) {
      if (!key.startsWith('leader')) {
        if (Date.now() - started15 > 15_000 && shown !== 'slow') {
          shown = 'slow';
          say(`no leader yet after 15 s (a busy machine starts nodes slowly); still waiting. Logs: ${root}`);
        }
        return;
      }
      started = true;
      shown = key;
      const first = nodes[0]!;
      say(`leader: ${line}`);
      say(`try:  redis-cli -p ${first.resp.split(':')[1]} set a 1   |   curl http://${first.http}/v1/kv/a`);
      say(`dashboard: http://${first.http}/ui/`);
      say('Ctrl-C stops all nodes; type "help" for commands (kill leader, restart <id>, status).');
      return;
    }
    if (key === shown) return;
    shown = key;
    say(`leader: ${line}`);
  };
  let busy = false;
  watcher.timer = setInterval(() => {
    if (busy) return;
    busy = true;
    watch().finally(() => {
      busy = false;
    });
  }, 250);
  return done;
}
