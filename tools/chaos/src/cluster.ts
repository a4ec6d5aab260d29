import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HARNESS_RUNTIME_FLAGS } from '@cohort/node';
import { freePorts } from '@cohort/scale-bench/ports';

/** The built `cohort` binary of apps/node (`pnpm turbo run build` first). */
export const CLI: string = fileURLToPath(new URL('../../../apps/node/dist/cli.js', import.meta.url));

/** One `cohort start` process of the chaos cluster. */
export interface ChaosNode {
  id: string;
  dataDir: string;
  peer: number;
  resp: number;
  http: number;
  /** The fault control file the node watches (`COHORT_FAULT_FILE`). */
  faultFile: string;
  /** While this file exists the node's database cannot grow (`COHORT_TEST_DISK_FULL`): SQLite fails its commits with SQLITE_FULL. */
  fullFile: string;
  child: ChildProcess | undefined;
  /** Paused by SIGSTOP and not resumed yet. */
  paused: boolean;
  /** The tail of its log (stderr), for failure messages. */
  log: string;
  /** Times it was started again on fresh client ports after finding one taken (see `restartOnTakenPort`). */
  portRetries?: number;
}

/** What `/v1/status` answers (the fields the harness reads). */
export interface Status {
  id: string;
  role: string;
  leader: string;
  term: number;
  applied: number;
  degraded?: string[];
  /** While `disk-full`: why (a commit waiting for space says its database "cannot grow"). */
  diskFull?: string;
}

/** The faults one node's control file asks for. */
export interface FaultState {
  dropTo: string[];
  diskFull: boolean;
}

/** Polls `fn` until it returns a value, failing after `ms` with `what` in the message. */
export async function poll<T>(what: string, ms: number, fn: () => Promise<T | undefined>, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Options of {@link ChaosCluster.create}. */
export interface ClusterOptions {
  root: string;
  nodes: number;
  /** Environment added to every node's (the planted stale-read fault). */
  env?: Record<string, string>;
  /** Partitions of the key space (each a Raft group of 3 replicas); 1 keeps one group. @default 1 */
  partitions?: number;
  /** Partitions run by Vertical Paxos (2 replicas each, the master on the meta group); needs partitions > 1. */
  vpaxos?: number[];
}

/** One partition as a node's `/v1/partitions` shows it (the fields the harness reads). */
export interface PartitionView {
  partition: number;
  leader?: string;
  /** `vpaxos` for a Vertical Paxos partition (its leader is the primary). */
  engine?: string;
}

/**
 * A cluster of real `cohort start` processes on 127.0.0.1 with lease reads
 * on, each watching its own fault control file: the harness kills, pauses
 * and resumes them by signal and cuts links and fills disks through the files.
 */
export class ChaosCluster {
  readonly nodes: ChaosNode[] = [];
  private readonly config: string;
  private readonly opts: ClusterOptions;
  private stopped = false;

  private constructor(opts: ClusterOptions) {
    this.opts = opts;
    this.config = join(opts.root, 'cohort.json');
  }

  static async create(opts: ClusterOptions): Promise<ChaosCluster> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`pnpm turbo run build\` first`);
    const c = new ChaosCluster(opts);
    // The chaos runs read under the leader's lease: a paused leader must not answer from an expired one.
    writeFileSync(c.config, JSON.stringify({ raft: { leaseReads: true } }));
    // Every port at once, all distinct: taken one at a time, a port just released may come back, and a node
    // given the same port for two listeners exits on its configuration (a CI run's cluster never settled).
    const ports = await freePorts(3 * opts.nodes);
    for (let i = 1; i <= opts.nodes; i++) {
      const [peer, resp, http] = ports.slice(3 * (i - 1), 3 * i) as [number, number, number];
      c.nodes.push({
        id: `n${i}`,
        dataDir: join(opts.root, `n${i}`),
        peer,
        resp,
        http,
        faultFile: join(opts.root, `n${i}.faults.json`),
        fullFile: join(opts.root, `n${i}.disk-full`),
        child: undefined,
        paused: false,
        log: '',
      });
    }
    for (const n of c.nodes) c.setFaults(n, { dropTo: [], diskFull: false });
    return c;
  }

  start(node: ChaosNode): void {
    const peers = this.nodes.map((n) => `${n.id}=127.0.0.1:${n.peer}`).join(',');
    const child = spawn(
      process.execPath,
      [
        ...HARNESS_RUNTIME_FLAGS,
        CLI,
        'start',
        '--config',
        this.config,
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
        '--request-timeout-ms',
        '3000',
        '--consistency-check-ms',
        '0',
        ...((this.opts.partitions ?? 1) > 1 ? ['--partitions', String(this.opts.partitions), '--replicas', '3'] : []),
        ...(this.opts.vpaxos?.length
          ? ['--partition-engines', this.opts.vpaxos.map((p) => `${p}=vpaxos`).join(',')]
          : []),
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: {
          ...process.env,
          COHORT_FAULT_FILE: node.faultFile,
          COHORT_TEST_DISK_FULL: node.fullFile,
          ...this.opts.env,
        },
      },
    );
    // What this start logged first: a port taken before it bound shows there.
    let early = '';
    child.stderr?.on('data', (d: Buffer) => {
      const text = d.toString();
      if (early.length < 65_536) early += text;
      node.log += text;
      if (node.log.length > 200_000) node.log = node.log.slice(-100_000);
    });
    child.once('close', () => void this.restartOnTakenPort(node, child, early));
    node.child = child;
    node.paused = false;
  }

  /**
   * Starts `node` again on fresh RESP and HTTP ports when it exited because
   * one was taken between {@link ChaosCluster.create} picking it and its bind (other test files
   * start processes alongside). Its peer port is in every node's `--peers`,
   * so a taken one stays a failure. At most twice per node.
   */
  private async restartOnTakenPort(node: ChaosNode, child: ChildProcess, log: string): Promise<void> {
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

  /** `n` ports free now that no node of the cluster was given (a stopped node's are free but still its own). */
  private async freshPorts(n: number): Promise<number[]> {
    const given = new Set(this.nodes.flatMap((x) => [x.peer, x.resp, x.http]));
    for (;;) {
      const ports = await freePorts(n);
      if (ports.every((p) => !given.has(p))) return ports;
    }
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n);
  }

  running(node: ChaosNode): boolean {
    return node.child !== undefined && node.child.exitCode === null && node.child.signalCode === null;
  }

  /** SIGKILLs `node` (resuming it first if paused) and waits for it to be gone. */
  async kill(node: ChaosNode): Promise<void> {
    const child = node.child;
    if (!child || !this.running(node)) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    node.paused = false;
  }

  pause(node: ChaosNode): void {
    if (!this.running(node)) return;
    node.child?.kill('SIGSTOP');
    node.paused = true;
  }

  resume(node: ChaosNode): void {
    if (!node.paused) return;
    if (this.running(node)) node.child?.kill('SIGCONT');
    node.paused = false;
  }

  /**
   * Rewrites `node`'s fault control file (atomically: a rename). A full disk
   * is both: the node counts its disk full at once (the control file), and
   * its database stops growing, so its next commits that need space fail
   * with SQLite's own SQLITE_FULL and wait (the store retries them).
   */
  setFaults(node: ChaosNode, faults: FaultState): void {
    const tmp = `${node.faultFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(faults));
    renameSync(tmp, node.faultFile);
    if (faults.diskFull) writeFileSync(node.fullFile, '');
    else rmSync(node.fullFile, { force: true });
  }

  /** Clears every fault: links restored, disks not full, paused nodes resumed, killed nodes restarted. */
  healAll(): void {
    for (const n of this.nodes) {
      this.setFaults(n, { dropTo: [], diskFull: false });
      this.resume(n);
      if (!this.running(n)) this.start(n);
    }
  }

  async status(node: ChaosNode, timeoutMs = 1000): Promise<Status | undefined> {
    if (!this.running(node) || node.paused) return undefined;
    try {
      const res = await fetch(`http://127.0.0.1:${node.http}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
      return res.ok ? ((await res.json()) as Status) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The node that says it leads, among the running ones (undefined when none does). */
  async leader(): Promise<ChaosNode | undefined> {
    const statuses = await Promise.all(this.nodes.map((n) => this.status(n)));
    const i = statuses.findIndex((s) => s?.role === 'leader');
    return i < 0 ? undefined : this.nodes[i];
  }

  /** Waits until every node runs and all agree on one leader (of every partition, when there are several). */
  async settled(ms: number): Promise<ChaosNode> {
    try {
      const leader = await poll('every node to agree on a leader', ms, async () => {
        const statuses = await Promise.all(this.nodes.map((n) => this.status(n)));
        const ids = new Set(statuses.map((s) => s?.leader ?? ''));
        const [id] = [...ids];
        return ids.size === 1 && id ? this.nodes.find((n) => n.id === id) : undefined;
      });
      if ((this.opts.partitions ?? 1) > 1) {
        await poll('every node to agree on the leader of every partition', ms, async () => {
          const views = await Promise.all(this.nodes.map((n) => this.partitions(n)));
          if (views.some((v) => v === undefined)) return undefined;
          const first = (views[0] as PartitionView[]).map((p) => p.leader ?? '');
          const agreed = first.every((l, i) => l !== '' && views.every((v) => (v as PartitionView[])[i]?.leader === l));
          return agreed ? true : undefined;
        });
      }
      return leader;
    } catch (err) {
      // Each node's state and its log's tail: which one did not come up, or would not follow, and why.
      const tails = this.nodes.map((n) => {
        const state = this.running(n)
          ? n.paused
            ? 'paused'
            : 'running'
          : `exited (${n.child?.exitCode ?? n.child?.signalCode ?? 'never started'})`;
        return { n, state, tail: `--- ${n.id}, ${state} ---\n${n.log.slice(-2000)}` };
      });
      // Last, a line a node: a report cut to its end still says which node was down and its last words.
      const summary = tails.map(
        ({ n, state }) => `${n.id} ${state}: ${n.log.trimEnd().split('\n').at(-1)?.slice(0, 300)}`,
      );
      throw new Error(
        `${(err as Error).message}\n${tails.map((t) => t.tail).join('\n')}\n--- in short ---\n${summary.join('\n')}`,
      );
    }
  }

  /** The partitions as `node` sees them (undefined when it does not answer). */
  async partitions(node: ChaosNode, timeoutMs = 1000): Promise<PartitionView[] | undefined> {
    if (!this.running(node) || node.paused) return undefined;
    try {
      const res = await fetch(`http://127.0.0.1:${node.http}/v1/partitions`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
      return res.ok ? ((await res.json()) as { partitions: PartitionView[] }).partitions : undefined;
    } catch {
      return undefined;
    }
  }

  /** The node `/v1/meta` names as the meta group's leader, asked of the running nodes in turn. */
  async metaLeader(): Promise<ChaosNode | undefined> {
    for (const n of this.nodes) {
      if (!this.running(n) || n.paused) continue;
      try {
        const res = await fetch(`http://127.0.0.1:${n.http}/v1/meta`, { signal: AbortSignal.timeout(1000) });
        const id = res.ok ? ((await res.json()) as { leader?: string }).leader : undefined;
        const node = this.nodes.find((x) => x.id === id);
        if (node !== undefined) return node;
      } catch {
        // Ask the next one.
      }
    }
    return undefined;
  }

  async stopAll(): Promise<void> {
    this.stopped = true;
    for (const n of this.nodes) this.resume(n);
    await Promise.all(this.nodes.map((n) => this.kill(n)));
  }
}
