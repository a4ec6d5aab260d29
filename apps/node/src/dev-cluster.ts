import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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
}

interface DevNode {
  id: string;
  resp: string;
  http: string;
  logFile: string;
  child: ChildProcess;
  exited: boolean;
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

async function waitForLeader(nodes: DevNode[], ms: number): Promise<string | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && nodes.every((n) => !n.exited)) {
    for (const n of nodes) {
      try {
        const s = (await (await fetch(`http://${n.http}/v1/status`)).json()) as { leader?: string };
        if (s.leader) return s.leader;
      } catch {
        // Not listening yet.
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

/**
 * Runs a local cluster of `cohort start` child processes until SIGINT or
 * SIGTERM, then stops them all and resolves with the exit status. A second
 * run on the same directory reuses the data.
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

  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
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

  ids.forEach((id, i) => {
    const resp = `127.0.0.1:${o.respPort + i}`;
    const http = `127.0.0.1:${o.httpPort + i}`;
    const logFile = join(root, `${id}.log`);
    const log = createWriteStream(logFile, { flags: 'a' });
    const args = ['start', '--id', id, '--data-dir', join(root, id), '--peers', peers, '--resp', resp, '--http', http];
    const child = spawn(process.execPath, [...NODE_RUNTIME_FLAGS, cli, ...args, '--log-level', o.logLevel], {
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    child.stderr?.pipe(log);
    const node: DevNode = { id, resp, http, logFile, child, exited: false };
    child.on('exit', (code, signal) => {
      node.exited = true;
      if (!stopping) {
        say(`node ${id} exited (${signal ?? `code ${code}`}); last lines of ${logFile}:`);
        say(lastLines(logFile, 5));
        stopAll(1);
      }
    });
    nodes.push(node);
  });

  say(`cohort dev: ${o.nodes} nodes, data in ${root}`);
  for (const n of nodes) say(`  ${n.id}  RESP ${n.resp}  HTTP http://${n.http}  log ${n.logFile}`);
  let leader = await waitForLeader(nodes, 15_000);
  if (!leader && !stopping) {
    say(`no leader yet after 15 s (a busy machine starts nodes slowly); still waiting. Logs: ${root}`);
    leader = await waitForLeader(nodes, 120_000);
  }
  if (leader) {
    const first = nodes[0]!;
    say(`leader: ${leader}`);
    say(`try:  redis-cli -p ${first.resp.split(':')[1]} set a 1   |   curl http://${first.http}/v1/kv/a`);
    say('Ctrl-C stops all nodes.');
  } else if (!stopping) {
    say(`no leader after 135 s; see the node logs in ${root}`);
  }
  return done;
}
