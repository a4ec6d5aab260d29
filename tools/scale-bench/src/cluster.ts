import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_RUNTIME_FLAGS } from '@cohort/node';
import { freePort, freePorts } from './ports.ts';

export { freePort, freePorts };

/** The built `cohort` binary of apps/node (`pnpm turbo run build` first). */
export const CLI: string = fileURLToPath(new URL('./cli.js', import.meta.resolve('@cohort/node')));

/** One JSON log line of a node, as pino writes it. */
export interface LogLine {
  msg: string;
  time: number;
  [field: string]: unknown;
}

/** One `cohort start` process of the benchmark cluster. */
export interface BenchNode {
  id: string;
  dataDir: string;
  peer: number;
  resp: number;
  http: number;
  child: ChildProcess | undefined;
  /** Log lines worth keeping (snapshots, leadership, errors), with the time the benchmark read them. */
  events: LogLine[];
}

/** What `/v1/status` answers. */
export interface Status {
  id: string;
  role: string;
  leader: string;
  commit: number;
  applied: number;
}

/** Resident and peak resident memory of a process, in bytes (Linux `/proc/<pid>/status`). */
export interface Memory {
  rss: number;
  hwm: number;
  /** Anonymous resident memory (heaps: V8's and native), and file-backed resident memory. */
  anon?: number;
  file?: number;
}

/** Linux's USER_HZ: `/proc/<pid>/stat` counts CPU time in these ticks. */
const CLOCK_TICKS = 100;

const KEPT = /snapshot|leadership|restored|failed|error|consistency|Debugger listening/i;

/** Polls `fn` until it returns a value, failing after `ms` with `what` in the message. */
export async function poll<T>(what: string, ms: number, fn: () => Promise<T | undefined>, everyMs = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The fields of a Linux `/proc/.../stat` line after the command name (which may hold spaces): field 3 on. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User plus system CPU seconds of a Linux `/proc/.../stat` line (a process's or a thread's). */
function statCpuSeconds(stat: string): number {
  const fields = statFields(stat);
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** User plus system CPU seconds process `pid` has used so far (Linux `/proc`); undefined when it is gone. */
export function pidCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * User plus system CPU seconds of this process's children that have exited and been waited for
 * (`cutime` and `cstime` of Linux `/proc/self/stat`): what a child such as a load generator used, read
 * before its start and after its exit.
 */
export function exitedChildrenCpuSeconds(): number {
  const fields = statFields(readFileSync('/proc/self/stat', 'utf8'));
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

/** CPU seconds of a node's threads by kind (see {@link BenchCluster.threadCpuSeconds}). */
export interface ThreadCpu {
  main: number;
  workers: number;
  v8: number;
  other: number;
}

/**
 * The kind of a Node process's thread: `main` is the process's first thread (its id is the process's);
 * the others by the names Node and V8 give them (`WorkerThread`, `V8Worker`, `V8 DefaultWorke`).
 */
function threadKind(comm: string, first: boolean): keyof ThreadCpu {
  if (first) return 'main';
  if (comm === 'WorkerThread') return 'workers';
  if (comm.startsWith('V8')) return 'v8';
  return 'other';
}

/** What else a {@link BenchCluster} may run its nodes with. */
export interface BenchClusterOptions {
  /** The `cohort` script to run (another build's `apps/node/dist/cli.js`). @default {@link CLI} */
  cli?: string;
  /** Variables added to each node's environment (test hooks such as `COHORT_STORE_WRITER`). */
  env?: Record<string, string>;
}

/** A cluster of real `cohort start` processes on 127.0.0.1 under `root`. */
export class BenchCluster {
  readonly nodes: BenchNode[] = [];
  readonly root: string;
  readonly args: string[];
  /** Node and V8 flags put before the script, after the ones every node runs with. */
  readonly runtimeFlags: string[];
  /** Put before each node's id in the names of its files under COHORT_BENCH_LOG_DIR (two clusters in one run). */
  logPrefix = '';
  /** The `cohort` script its nodes run: {@link CLI}, or another build's. */
  readonly cli: string;
  /** Variables added to the environment of its nodes. */
  readonly env: Readonly<Record<string, string>>;

  private constructor(root: string, args: string[], runtimeFlags: string[], opts: BenchClusterOptions) {
    this.root = root;
    this.args = args;
    this.runtimeFlags = runtimeFlags;
    this.cli = opts.cli ?? CLI;
    this.env = opts.env ?? {};
  }

  /**
   * Picks free ports for `n` nodes; `args` are extra `cohort start` flags, `runtimeFlags` extra Node flags,
   * `opts` another build's script and variables for the nodes' environment.
   */
  static async create(
    root: string,
    n: number,
    args: string[],
    runtimeFlags: string[] = [],
    opts: BenchClusterOptions = {},
  ): Promise<BenchCluster> {
    const c = new BenchCluster(root, args, runtimeFlags, opts);
    const ports = await freePorts(3 * n);
    for (let i = 1; i <= n; i++) {
      c.nodes.push({
        id: `n${i}`,
        dataDir: join(root, `n${i}`),
        peer: ports[3 * i - 3]!,
        resp: ports[3 * i - 2]!,
        http: ports[3 * i - 1]!,
        child: undefined,
        events: [],
      });
    }
    return c;
  }

  start(node: BenchNode): void {
    const peers = this.nodes.map((n) => `${n.id}=127.0.0.1:${n.peer}`).join(',');
    const child = spawn(
      process.execPath,
      [
        ...NODE_RUNTIME_FLAGS,
        ...this.runtimeFlags,
        this.cli,
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
        ...this.args,
      ],
      {
        stdio: ['ignore', process.env.COHORT_BENCH_LOG_DIR ? 'pipe' : 'ignore', 'pipe'],
        env: { ...process.env, ...this.env },
      },
    );
    let partial = '';
    // COHORT_BENCH_LOG_DIR=<dir> keeps every node's log, one file per node, for reading a run afterwards.
    const logDir = process.env.COHORT_BENCH_LOG_DIR;
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      const file = createWriteStream(join(logDir, `${this.logPrefix}${node.id}.log`), { flags: 'a' });
      child.stderr?.pipe(file);
      // What the process prints besides its log (for example V8's --trace-gc lines).
      child.stdout?.pipe(createWriteStream(join(logDir, `${this.logPrefix}${node.id}.out`), { flags: 'a' }));
    }
    child.stderr?.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!KEPT.test(line)) continue;
        try {
          node.events.push(JSON.parse(line) as LogLine);
        } catch {
          node.events.push({ msg: line, time: Date.now() });
        }
      }
    });
    node.child = child;
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n);
  }

  async kill(node: BenchNode, signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await gone;
  }

  /**
   * Kills `node` and deletes its data directory but for its peer identity
   * (`peer-key`): the other nodes pin each member's libp2p identity, so a node
   * with a new one would be a new member, not the same node with an empty disk.
   */
  async wipe(node: BenchNode): Promise<void> {
    await this.kill(node);
    for (const f of readdirSync(node.dataDir)) {
      if (f !== 'peer-key') rmSync(join(node.dataDir, f), { recursive: true, force: true });
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.kill(n, 'SIGTERM')));
  }

  async status(node: BenchNode): Promise<Status | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${node.http}/v1/status`, { signal: AbortSignal.timeout(1000) });
      return res.ok ? ((await res.json()) as Status) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The leader every running node agrees on. */
  leader(ms = 30_000): Promise<BenchNode> {
    const running = this.nodes.filter((n) => n.child?.exitCode === null && n.child.signalCode === null);
    return poll('a leader', ms, async () => {
      const statuses = await Promise.all(running.map((n) => this.status(n)));
      const ids = new Set(statuses.map((s) => s?.leader));
      const [id] = [...ids];
      return ids.size === 1 && id ? this.nodes.find((n) => n.id === id) : undefined;
    });
  }

  /**
   * CPU seconds (user + system, all threads) the node's process has used so far
   * (Linux `/proc/<pid>/stat`); undefined when it is not running.
   */
  cpuSeconds(node: BenchNode): number | undefined {
    if (node.child?.exitCode !== null) return undefined;
    return pidCpuSeconds(node.child?.pid);
  }

  /**
   * CPU seconds (user + system) the node's threads have used so far, by kind, from Linux
   * `/proc/<pid>/task/<tid>/stat`: `main` (the event loop's thread), `workers` (worker threads: the
   * store's writer, and a snapshot's reader while one streams), `v8` (V8's helper threads: concurrent
   * and parallel GC, optimizing compilers) and `other` (libuv's pool, Node's own). Only threads alive
   * now count: the CPU of one that exited since an earlier reading is missing from the difference.
   * Undefined when the node is not running.
   */
  threadCpuSeconds(node: BenchNode): ThreadCpu | undefined {
    const pid = node.child?.pid;
    if (pid === undefined || node.child?.exitCode !== null) return undefined;
    const out: ThreadCpu = { main: 0, workers: 0, v8: 0, other: 0 };
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      return undefined;
    }
    for (const tid of tids) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        out[threadKind(comm, tid === String(pid))] += statCpuSeconds(stat);
      } catch {
        // The thread exited between the listing and the read.
      }
    }
    return out;
  }

  /**
   * Bytes the node's process caused to be written to the storage layer so far
   * (Linux `/proc/<pid>/io` `write_bytes`); undefined when it is not running or unreadable.
   */
  diskBytesWritten(node: BenchNode): number | undefined {
    const pid = node.child?.pid;
    if (pid === undefined || node.child?.exitCode !== null) return undefined;
    try {
      const m = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The node's memory now; undefined when it is not running. */
  memory(node: BenchNode): Memory | undefined {
    const pid = node.child?.pid;
    if (pid === undefined || node.child?.exitCode !== null) return undefined;
    try {
      const text = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
      return {
        rss: kb('VmRSS') * 1024,
        hwm: kb('VmHWM') * 1024,
        anon: kb('RssAnon') * 1024,
        file: (kb('RssFile') + kb('RssShmem')) * 1024,
      };
    } catch {
      return undefined;
    }
  }
}
