import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { NodeStatus } from '../../src/kv-api.js';
import { HARNESS_RUNTIME_FLAGS } from '../../src/runtime-flags.js';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** Ports the OS reports free right now (bound then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A first port such that it and the next `n - 1` are free right now. */
export async function freeRun(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const [base] = await freePorts(1);
    let ok = base !== undefined && base + n < 65536;
    for (let i = 1; ok && i < n; i++) ok = await canBind(base! + i);
    if (ok) return base!;
  }
  throw new Error(`no run of ${n} free ports found`);
}

export interface ProcNode {
  id: string;
  dataDir: string;
  peer: number;
  resp: number;
  http: number;
  child?: ChildProcess;
  /** Environment variables added to the process's own when it starts. */
  env?: Record<string, string>;
  /** Flags added to this node's `cohort start` (after the cluster's). */
  args?: string[];
  /** The node's stderr (its JSON log), kept for failure messages. */
  log: string;
  /** Restarts after another process took its RESP or HTTP port before it bound it. */
  portRetries?: number;
}

/** A cluster of real `cohort start` processes on 127.0.0.1 with temp data dirs. */
export class ProcCluster {
  readonly nodes: ProcNode[] = [];
  /** Set by {@link killAll}: no node starts again after it. */
  private stopped = false;
  readonly root = mkdtempSync(join(tmpdir(), 'cohort-e2e-'));

  static async create(n: number, extraArgs: string[] = []): Promise<ProcCluster> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`pnpm run build\` in apps/node first`);
    const c = new ProcCluster(extraArgs);
    const ports = await freePorts(3 * n);
    for (let i = 0; i < n; i++) {
      c.nodes.push({
        id: `n${i + 1}`,
        dataDir: join(c.root, `n${i + 1}`),
        peer: ports[3 * i]!,
        resp: ports[3 * i + 1]!,
        http: ports[3 * i + 2]!,
        log: '',
      });
    }
    return c;
  }

  private constructor(readonly extraArgs: string[]) {}

  start(node: ProcNode): void {
    const peers = this.nodes.map((n) => `${n.id}=127.0.0.1:${n.peer}`).join(',');
    const args = [
      CLI,
      'start',
      '--id',
      node.id,
      '--data-dir',
      node.dataDir,
      '--peers',
      peers,
      '--resp',
      `127.0.0.1:${node.resp}`,
      '--http',
      `127.0.0.1:${node.http}`,
      ...this.extraArgs,
      ...(node.args ?? []),
    ];
    const child = spawn(process.execPath, [...HARNESS_RUNTIME_FLAGS, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...node.env },
    });
    child.stderr?.on('data', (d: Buffer) => {
      node.log += d.toString();
      if (node.log.length > 200_000) node.log = node.log.slice(-100_000);
    });
    const from = node.log.length;
    child.once('close', () => void this.restartOnTakenPort(node, child, node.log.slice(from)));
    node.child = child;
  }

  /**
   * Starts `node` again on fresh client ports when it failed to start because another process took its
   * RESP or HTTP port between {@link freePorts} and its bind (other suites start processes alongside);
   * a peer port is in every node's `--peers`, so a taken one stays a failure. At most twice per node.
   */
  private async restartOnTakenPort(node: ProcNode, child: ChildProcess, log: string): Promise<void> {
    const port = Number(/EADDRINUSE: address already in use 127\.0\.0\.1:(\d+)/.exec(log)?.[1]);
    if (this.stopped || node.child !== child || (port !== node.resp && port !== node.http)) return;
    node.portRetries = (node.portRetries ?? 0) + 1;
    if (node.portRetries > 2) return;
    const [resp, http] = (await this.freshPorts(2)) as [number, number];
    if (this.stopped || node.child !== child) return;
    node.resp = resp;
    node.http = http;
    node.log += `--- harness: port ${port} was taken; starting again on RESP ${resp}, HTTP ${http} ---\n`;
    this.start(node);
  }

  /**
   * `n` ports free now that no node of the cluster was given: a node not started yet, or stopped, holds none
   * of its ports, and the OS may hand one out again (a node given another's port exits on it).
   */
  private async freshPorts(n: number): Promise<number[]> {
    const given = new Set(this.nodes.flatMap((x) => [x.peer, x.resp, x.http]));
    for (;;) {
      const ports = await freePorts(n);
      if (ports.every((p) => !given.has(p))) return ports;
    }
  }

  /** Adds a node `id` with fresh ports and data directory (not started). */
  async addNode(id: string, args: string[] = []): Promise<ProcNode> {
    const [peer, resp, http] = (await this.freshPorts(3)) as [number, number, number];
    const node: ProcNode = { id, dataDir: join(this.root, id), peer, resp, http, log: '', args };
    this.nodes.push(node);
    return node;
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n);
  }

  /** SIGKILLs `node` and waits for it to be gone. */
  async kill(node: ProcNode): Promise<void> {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }

  /** Sends SIGTERM to `node` and resolves with its exit code once it is gone. */
  async terminate(node: ProcNode): Promise<number | null> {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const gone = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    return gone;
  }

  /** SIGKILLs every node and removes the cluster's temp data (call once, at the end). */
  /**
   * The nodes' log lines at warn level or above, and every leadership change, last `lines` of each node,
   * merged in time order: printed by a test that failed, so a CI log says what the cluster went through.
   */
  notableLog(lines = 60): string {
    const rows: { time: number; line: string }[] = [];
    for (const n of this.nodes) {
      const picked: { time: number; line: string }[] = [];
      for (const line of n.log.split('\n')) {
        let rec: { level?: number; time?: number; msg?: string };
        try {
          rec = JSON.parse(line) as typeof rec;
        } catch {
          continue;
        }
        if ((rec.level ?? 0) >= 40 || /leader/.test(rec.msg ?? '')) picked.push({ time: rec.time ?? 0, line });
      }
      rows.push(...picked.slice(-lines));
    }
    return rows
      .sort((a, b) => a.time - b.time)
      .map((r) => r.line)
      .join('\n');
  }

  async killAll(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.nodes.map((n) => this.kill(n)));
    rmSync(this.root, { recursive: true, force: true });
  }

  async status(node: ProcNode): Promise<NodeStatus | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${node.http}/v1/status`, { signal: AbortSignal.timeout(1000) });
      return (await res.json()) as NodeStatus;
    } catch {
      return undefined;
    }
  }

  /** The leader all `among` agree on, polling until `ms` pass. */
  async leader(among: ProcNode[], ms: number, not?: string): Promise<ProcNode> {
    return poll(
      `a leader among ${among.map((n) => n.id).join(',')}${not ? ` other than ${not}` : ''}`,
      ms,
      async () => {
        const statuses = await Promise.all(among.map((n) => this.status(n)));
        const leaders = new Set(statuses.map((s) => s?.leader));
        const [lead] = [...leaders];
        if (leaders.size !== 1 || !lead || lead === not) return undefined;
        return among.find((n) => n.id === lead);
      },
    );
  }
}

/** Polls `fn` until it returns a value or `ms` pass. */
export async function poll<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An ioredis client of `node`'s RESP port (one retry, 10 s per command), added to `clients` to disconnect at the end. */
export function redisClient(node: ProcNode, clients: Redis[]): Redis {
  const r = new Redis({ port: node.resp, host: '127.0.0.1', maxRetriesPerRequest: 1, commandTimeout: 10_000 });
  clients.push(r);
  return r;
}

/** Runs `cohort start` with `args` and resolves with its exit code and stderr once it exits. */
export function runToExit(args: string[], ms = 20_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...HARNESS_RUNTIME_FLAGS, CLI, 'start', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cohort start ${args.join(' ')} did not exit within ${ms} ms: ${stderr.slice(-2000)}`));
    }, ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}
