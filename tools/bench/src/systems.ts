// The three systems the comparison starts on 127.0.0.1, each with its data in
// a directory of its own under the run's temporary directory, fsync on.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  BenchCluster,
  type BenchClusterOptions,
  type BenchNode,
  CLI,
  freePort,
  freePorts,
  pidCpuSeconds,
  poll,
} from '@cohort/scale-bench/cluster';
import { loadKeys, valueFor } from '@cohort/scale-bench/load';
import { Redis } from 'ioredis';
import type { HttpApi } from './http-load.ts';
import { benchmarkKey } from './resp-load.ts';
import type { SystemName } from './stats.ts';
import { type NodeCounters, parseMetrics } from './write-phases.ts';

/** A system under comparison. */
export interface System {
  readonly name: SystemName;
  /** The HTTP API it serves, if any. */
  readonly http: HttpApi | undefined;
  /** Whether it serves RESP. */
  readonly resp: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** What makes a write durable there, as run here. */
  durability(): Promise<string>;
  /** The base URL of the HTTP API on the leader. */
  httpUrl(): Promise<string>;
  /** The RESP port of the leader. */
  respPort(): Promise<number>;
  /** Writes keys `[from, to)` (redis-benchmark's names, {@link valueFor} values); resolves with keys per second. */
  load(from: number, to: number, valueBytes: number, onProgress: (loaded: number) => void): Promise<number>;
  /** Throws unless key `i` holds what {@link load} wrote. */
  check(i: number, valueBytes: number): Promise<void>;
  /** CPU seconds (user + system, every thread) its server processes have used so far, summed. */
  cpuSeconds(): number;
}

/** Keys per MSET and commands in flight per connection while loading over RESP. */
const RESP_LOAD = { connections: 8, batch: 100, depth: 8 };

async function loadOverResp(
  port: number,
  from: number,
  to: number,
  valueBytes: number,
  onProgress: (loaded: number) => void,
): Promise<number> {
  const clients = Array.from({ length: RESP_LOAD.connections }, () => new Redis({ port, host: '127.0.0.1' }));
  try {
    return await loadKeys(clients, to, valueBytes, RESP_LOAD.batch, RESP_LOAD.depth, onProgress, {
      from,
      key: benchmarkKey,
    });
  } finally {
    for (const c of clients) c.disconnect();
  }
}

function expectValue(system: string, i: number, got: string | null | undefined, valueBytes: number): void {
  if (got !== valueFor(i, valueBytes))
    throw new Error(`${system}: key ${benchmarkKey(i)} holds ${JSON.stringify(got)?.slice(0, 60)} after the load`);
}

/** Keeps the last lines a child wrote to stderr, to say why it stopped. */
function tail(child: ChildProcess, lines: string[]): void {
  child.stderr?.on('data', (d: Buffer) => {
    lines.push(...d.toString().split('\n').filter(Boolean));
    if (lines.length > 20) lines.splice(0, lines.length - 20);
  });
}

function running(child: ChildProcess | undefined): boolean {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || !running(child)) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

/** A system run from an installed binary, its data under `root`. */
abstract class Installed {
  protected readonly root: string;
  protected readonly binary: string;

  constructor(root: string, binary: string) {
    this.root = root;
    this.binary = binary;
  }
}

/** A 3-node Cohort cluster of the built `cohort` binary, through its leader. */
export class CohortSystem implements System {
  readonly name = 'cohort';
  readonly http = 'cohort';
  readonly resp = true;
  private cluster: BenchCluster | undefined;
  private readonly root: string;
  private readonly flags: string[];
  private readonly nodeFlags: string[];
  private readonly clusterOpts: BenchClusterOptions;

  /**
   * `flags`: extra `cohort start` flags of every node; `nodeFlags`: extra Node/V8 flags of every node;
   * `clusterOpts`: another build's `cohort` script, variables for the nodes' environment.
   */
  constructor(root: string, flags: string[] = [], nodeFlags: string[] = [], clusterOpts: BenchClusterOptions = {}) {
    this.root = root;
    this.flags = flags;
    this.nodeFlags = nodeFlags;
    this.clusterOpts = clusterOpts;
  }

  /** Whether the `cohort` binary has been built. */
  static built(): boolean {
    return existsSync(CLI);
  }

  async start(): Promise<void> {
    this.cluster = await BenchCluster.create(
      this.root,
      3,
      ['--log-level', 'warn', ...this.flags],
      this.nodeFlags,
      this.clusterOpts,
    );
    this.cluster.startAll();
    await this.cluster.leader(60_000);
  }

  async stop(): Promise<void> {
    await this.cluster?.stopAll();
  }

  async durability(): Promise<string> {
    const flags = this.flags.length > 0 ? `; started with ${this.flags.join(' ')}` : '';
    const node = this.nodeFlags.length > 0 ? `; Node run with ${this.nodeFlags.join(' ')}` : '';
    return `3 voters; SQLite journal_mode=WAL, synchronous=FULL; a write is acknowledged once a majority wrote it durably${flags}${node}`;
  }

  private leader() {
    if (!this.cluster) throw new Error('cohort: not started');
    return this.cluster.leader(30_000);
  }

  async httpUrl(): Promise<string> {
    return `http://127.0.0.1:${(await this.leader()).http}`;
  }

  async respPort(): Promise<number> {
    return (await this.leader()).resp;
  }

  async load(from: number, to: number, valueBytes: number, onProgress: (loaded: number) => void): Promise<number> {
    const cluster = this.cluster!;
    const leader = await this.leader();
    const rate = await loadOverResp(leader.resp, from, to, valueBytes, onProgress);
    // Measure from a cluster at rest: every node applied the load.
    const commit = (await cluster.status(leader))?.commit ?? 0;
    for (const n of cluster.nodes) {
      await poll(`${n.id} to apply index ${commit}`, 300_000, async () => {
        const s = await cluster.status(n);
        return s && s.applied >= commit ? true : undefined;
      });
    }
    return rate;
  }

  /** The leader's and every node's counters now (see {@link writeCost}). */
  async counters(): Promise<{ leader: NodeCounters; nodes: NodeCounters[] }> {
    const cluster = this.cluster;
    if (!cluster) throw new Error('cohort: not started');
    const leader = await this.leader();
    const read = async (n: BenchNode): Promise<NodeCounters> => {
      const res = await fetch(`http://127.0.0.1:${n.http}/metrics`, { signal: AbortSignal.timeout(5000) });
      const counters: NodeCounters = {
        ...parseMetrics(res.ok ? await res.text() : ''),
        cpuSeconds: cluster.cpuSeconds(n) ?? 0,
        diskBytes: cluster.diskBytesWritten(n) ?? 0,
      };
      const threads = cluster.threadCpuSeconds(n);
      return threads === undefined ? counters : { ...counters, threadCpu: threads };
    };
    const nodes = await Promise.all(cluster.nodes.map(read));
    return { leader: nodes[cluster.nodes.indexOf(leader)] as NodeCounters, nodes };
  }

  cpuSeconds(): number {
    const cluster = this.cluster;
    return cluster ? cluster.nodes.reduce((t, n) => t + (cluster.cpuSeconds(n) ?? 0), 0) : 0;
  }

  async check(i: number, valueBytes: number): Promise<void> {
    const res = await fetch(`${await this.httpUrl()}/v1/kv/${benchmarkKey(i)}`, { signal: AbortSignal.timeout(5000) });
    const body = res.ok ? ((await res.json()) as { value?: string }) : undefined;
    expectValue('cohort', i, body?.value ?? `HTTP ${res.status}`, valueBytes);
  }
}

interface EtcdMember {
  name: string;
  dir: string;
  client: number;
  peer: number;
  child: ChildProcess | undefined;
  stderr: string[];
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** etcd's largest transaction by default (`--max-txn-ops`): the load writes this many keys per request. */
const ETCD_TXN_OPS = 128;

/** A 3-member etcd cluster (v3 API through its JSON gateway), through its leader. */
export class EtcdSystem extends Installed implements System {
  readonly name = 'etcd';
  readonly http = 'etcd';
  readonly resp = false;
  private members: EtcdMember[] = [];

  async start(): Promise<void> {
    const ports = await freePorts(6);
    for (let i = 1; i <= 3; i++) {
      this.members.push({
        name: `e${i}`,
        dir: join(this.root, `e${i}`),
        client: ports[2 * i - 2]!,
        peer: ports[2 * i - 1]!,
        child: undefined,
        stderr: [],
      });
    }
    const initial = this.members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
    for (const m of this.members) {
      mkdirSync(m.dir, { recursive: true });
      const child = spawn(
        this.binary,
        [
          '--name',
          m.name,
          '--data-dir',
          m.dir,
          '--listen-client-urls',
          `http://127.0.0.1:${m.client}`,
          '--advertise-client-urls',
          `http://127.0.0.1:${m.client}`,
          '--listen-peer-urls',
          `http://127.0.0.1:${m.peer}`,
          '--initial-advertise-peer-urls',
          `http://127.0.0.1:${m.peer}`,
          '--initial-cluster',
          initial,
          '--initial-cluster-token',
          'cohort-bench',
          '--initial-cluster-state',
          'new',
          // Room for the loaded stage and the puts of every round: the default quota (2 GiB) raises an alarm
          // that stops writes, not a durability setting.
          '--quota-backend-bytes',
          String(8 * 1024 ** 3),
          '--logger',
          'zap',
          '--log-outputs',
          'stderr',
          '--log-level',
          'error',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      tail(child, m.stderr);
      m.child = child;
    }
    await this.leader(60_000);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => stopChild(m.child)));
  }

  async durability(): Promise<string> {
    return '3 members; the WAL is fsynced before a proposal is acknowledged (etcd default, --unsafe-no-fsync off)';
  }

  private async post<T>(m: EtcdMember, path: string, body: unknown): Promise<T | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${m.client}${path}`, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
      return (await res.json()) as T;
    } catch (err) {
      if (!running(m.child))
        throw new Error(
          `etcd member ${m.name} exited (${m.child?.exitCode ?? m.child?.signalCode}): ${m.stderr.join('\n')}`,
        );
      throw err;
    }
  }

  /** The member every running member names as leader. */
  private leader(ms = 30_000): Promise<EtcdMember> {
    type Status = { header?: { member_id?: string }; leader?: string };
    return poll('an etcd leader', ms, async () => {
      const statuses = await Promise.all(
        this.members.map((m) => this.post<Status>(m, '/v3/maintenance/status', {}).catch(() => undefined)),
      );
      const dead = this.members.find((m) => !running(m.child));
      if (dead) throw new Error(`etcd member ${dead.name} exited: ${dead.stderr.join('\n')}`);
      const leaders = new Set(statuses.map((s) => s?.leader));
      const [id] = [...leaders];
      if (leaders.size !== 1 || !id || id === '0') return undefined;
      const i = statuses.findIndex((s) => s?.header?.member_id === id);
      return i >= 0 ? this.members[i] : undefined;
    });
  }

  async httpUrl(): Promise<string> {
    return `http://127.0.0.1:${(await this.leader()).client}`;
  }

  respPort(): Promise<number> {
    throw new Error('etcd serves no RESP');
  }

  async load(from: number, to: number, valueBytes: number, onProgress: (loaded: number) => void): Promise<number> {
    const leader = await this.leader();
    const started = performance.now();
    let next = from;
    let loaded = 0;
    let reported = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const first = next;
        if (first >= to) return;
        next = Math.min(to, first + ETCD_TXN_OPS);
        const success = [];
        for (let i = first; i < next; i++)
          success.push({ request_put: { key: b64(benchmarkKey(i)), value: b64(valueFor(i, valueBytes)) } });
        await this.post(leader, '/v3/kv/txn', { success });
        loaded += success.length;
        if (loaded - reported >= 50_000) {
          reported = loaded;
          onProgress(loaded);
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    return Math.round((to - from) / ((performance.now() - started) / 1000));
  }

  cpuSeconds(): number {
    return this.members.reduce((t, m) => t + (pidCpuSeconds(m.child?.pid) ?? 0), 0);
  }

  async check(i: number, valueBytes: number): Promise<void> {
    const res = await this.post<{ kvs?: { value?: string }[] }>(await this.leader(), '/v3/kv/range', {
      key: b64(benchmarkKey(i)),
    });
    const v = res?.kvs?.[0]?.value;
    expectValue('etcd', i, v === undefined ? undefined : Buffer.from(v, 'base64').toString(), valueBytes);
  }
}

/** A single Redis with `appendonly yes`, `appendfsync always`, no RDB snapshots. */
export class RedisSystem extends Installed implements System {
  readonly name = 'redis';
  readonly http = undefined;
  readonly resp = true;
  private port = 0;
  private child: ChildProcess | undefined;
  private readonly stderr: string[] = [];

  async start(): Promise<void> {
    this.port = await freePort();
    mkdirSync(this.root, { recursive: true });
    this.child = spawn(
      this.binary,
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.root,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
        '--daemonize',
        'no',
        '--logfile',
        '',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // Redis logs to stdout when --logfile is empty.
    this.child.stdout?.resume();
    tail(this.child, this.stderr);
    const probe = new Redis({ port: this.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
    // Refused connections until it listens: the poll below retries them.
    probe.on('error', () => {});
    try {
      await poll('redis-server to answer PING', 30_000, async () => {
        if (!running(this.child)) throw new Error(`redis-server exited: ${this.stderr.join('\n')}`);
        try {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG' ? true : undefined;
        } catch {
          probe.disconnect();
          return undefined;
        }
      });
    } finally {
      probe.disconnect();
    }
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
  }

  async durability(): Promise<string> {
    const r = new Redis({ port: this.port, host: '127.0.0.1' });
    try {
      const get = async (name: string): Promise<string> => ((await r.config('GET', name)) as string[])[1] ?? '?';
      const save = await get('save');
      return `1 node, no replica; appendonly ${await get('appendonly')}, appendfsync ${await get('appendfsync')}, save '${save}'`;
    } finally {
      r.disconnect();
    }
  }

  httpUrl(): Promise<string> {
    throw new Error('redis serves no HTTP');
  }

  async respPort(): Promise<number> {
    return this.port;
  }

  load(from: number, to: number, valueBytes: number, onProgress: (loaded: number) => void): Promise<number> {
    return loadOverResp(this.port, from, to, valueBytes, onProgress);
  }

  cpuSeconds(): number {
    return pidCpuSeconds(this.child?.pid) ?? 0;
  }

  async check(i: number, valueBytes: number): Promise<void> {
    const r = new Redis({ port: this.port, host: '127.0.0.1' });
    try {
      expectValue('redis', i, await r.get(benchmarkKey(i)), valueBytes);
    } finally {
      r.disconnect();
    }
  }
}
