import type { CircuitBreakerStats, CircuitState } from '@cohort/kv';
import type { HostStats, ProposalTiming } from '@cohort/raft';
import type { KvRowCacheStats, ReadAheadStats, WriterStats } from '@cohort/storage';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.js';
import type { NodeStatus } from './kv-api.js';
import type { StallCause } from './stall-watch.js';

/** The node's Prometheus metrics, served on `GET /metrics`. */
export class NodeMetrics {
  readonly registry = new Registry();
  /**
   * Client requests by front end, command and outcome (`ok`, `error`, or a failure code), and their latency by
   * front end and kind (read or write): counted for every request, so in cells (see hot-metrics.ts).
   */
  readonly requests = new HotCounter(
    'cohort_requests_total',
    'Client requests served, by front end, command and outcome',
    ['frontend', 'command', 'outcome'],
    this.registry,
  );
  readonly latency = new HotHistogram(
    'cohort_request_duration_seconds',
    'Client request latency, by front end and kind (read or write)',
    ['frontend', 'kind'],
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    this.registry,
  );

  /**
   * Latency of each phase of a write this node proposed as leader, from the proposal: `persisted`
   * (its entry durable in the local log), `committed` (known committed), `applied` (applied, the
   * proposer answered); `replied` (the reply handed to the client connection) is timed by the
   * front end from the request's arrival, for writes that arrived at the leader.
   */
  readonly proposalPhases = new HotHistogram(
    'cohort_raft_proposal_phase_seconds',
    'Time from a proposal on the leader to each phase: persisted locally, committed, applied, replied',
    ['phase'],
    // Fine around a few milliseconds, where an fsync and a loopback round trip fall.
    [
      0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
      0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
    ],
    this.registry,
  );
  private readonly phase = {
    persisted: this.proposalPhases.cell({ phase: 'persisted' }),
    committed: this.proposalPhases.cell({ phase: 'committed' }),
    applied: this.proposalPhases.cell({ phase: 'applied' }),
    replied: this.proposalPhases.cell({ phase: 'replied' }),
  };

  /**
   * Failovers of the groups this node replicates, as it saw them: from knowing no leader after
   * having one to knowing the next (see leader-history.ts), by group.
   */
  readonly failovers = new Histogram({
    name: 'cohort_partition_failover_seconds',
    help: 'Failovers seen by this node: from losing the leader of a group to knowing the next one, by group',
    labelNames: ['group'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30],
    registers: [this.registry],
  });

  /** Consistency checks by verdict (`consistent`, `inconsistent`, `incomplete`). */
  readonly consistencyChecks = new Counter({
    name: 'cohort_consistency_checks_total',
    help: 'Consistency checks of the replicas run by this node, by verdict; any inconsistent one needs an operator',
    labelNames: ['verdict'] as const,
    registers: [this.registry],
  });

  /**
   * Steps of the transactions across partitions this node coordinated, as
   * sent: `txnPrepare` once per participant and attempt, then `txnCommit`
   * or (a conflict) `txnAbort` once per attempt, so aborts over commits plus
   * aborts is the rate of attempts retried; `exec` counts one-partition
   * transactions.
   */
  readonly txnSteps = new Counter({
    name: 'cohort_txn_steps_total',
    help: 'Steps of transactions across partitions this node coordinated, as sent, by step (txnAbort / (txnCommit + txnAbort): the retry rate)',
    labelNames: ['step'] as const,
    registers: [this.registry],
  });

  /**
   * Stalls of the event loop past the stall watch's threshold (half the
   * minimum election timeout), by what the main thread did meanwhile (a
   * {@link StallCause}).
   */
  readonly loopStalls = new Counter({
    name: 'cohort_event_loop_stalls_total',
    help: 'Event loop stalls of at least half the minimum election timeout, by cause (running, waiting for a CPU, stolen, off CPU, mixed)',
    labelNames: ['cause'] as const,
    registers: [this.registry],
  });

  /** Pipelined RESP writes proposed together, and the log entries they became (see merged-writes.ts). */
  private readonly merged = {
    writes: new Counter({
      name: 'cohort_resp_merged_writes_total',
      help: 'Pipelined RESP writes proposed together with others of their connection in one log entry',
      registers: [this.registry],
    }),
    entries: new Counter({
      name: 'cohort_resp_merged_entries_total',
      help: 'Log entries holding merged pipelined RESP writes (merged writes over this: writes per entry)',
      registers: [this.registry],
    }),
  };

  /** Conditional writes without a session (HTTP) proposed together, and the log entries they became. */
  private readonly mergedConcurrent = {
    writes: new Counter({
      name: 'cohort_merged_conditional_writes_total',
      help: "Conditional writes without a session (HTTP puts and deletes) proposed together with other clients' in one log entry",
      registers: [this.registry],
    }),
    entries: new Counter({
      name: 'cohort_merged_conditional_entries_total',
      help: 'Log entries holding merged conditional writes of several clients (merged writes over this: writes per entry)',
      registers: [this.registry],
    }),
  };

  /** Unpipelined writes of several RESP connections proposed together, and the log entries they became. */
  private readonly mergedConnections = {
    writes: new Counter({
      name: 'cohort_merged_connection_writes_total',
      help: "Unpipelined RESP writes proposed together with other connections' in one log entry",
      registers: [this.registry],
    }),
    entries: new Counter({
      name: 'cohort_merged_connection_entries_total',
      help: 'Log entries holding merged writes of several RESP connections (merged writes over this: writes per entry)',
      registers: [this.registry],
    }),
  };

  /**
   * Counts `writes` concurrent writes proposed as `entries` entries:
   * conditional ones without a session, or connections' (`sessioned`).
   */
  mergedConcurrentWrites(writes: number, entries: number, sessioned: boolean): void {
    const c = sessioned ? this.mergedConnections : this.mergedConcurrent;
    c.writes.inc(writes);
    c.entries.inc(entries);
  }

  /** Counts `writes` pipelined writes proposed as `entries` entries. */
  mergedWrites(writes: number, entries: number): void {
    this.merged.writes.inc(writes);
    this.merged.entries.inc(entries);
  }

  constructor(status: () => NodeStatus, hostStats?: () => HostStats) {
    collectDefaultMetrics({ register: this.registry });
    const gauge = (name: string, help: string, read: (s: NodeStatus) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read(status()));
        },
      });
    };
    gauge('cohort_raft_term', 'Current Raft term', (s) => s.term);
    gauge('cohort_raft_commit_index', 'Highest log index known committed', (s) => s.commit);
    gauge('cohort_raft_applied_index', 'Highest log index applied to the state machine', (s) => s.applied);
    gauge('cohort_raft_is_leader', '1 when this node leads the group', (s) => (s.role === 'leader' ? 1 : 0));
    if (hostStats) this.hostCounters(hostStats);
  }

  /** Records the phases of a proposal the Raft host applied (its `onProposalTiming`); times in ms. */
  observeProposal(t: ProposalTiming): void {
    this.phase.persisted.observe((t.persisted - t.proposed) / 1000);
    this.phase.committed.observe((t.committed - t.proposed) / 1000);
    this.phase.applied.observe((t.applied - t.proposed) / 1000);
  }

  /** Records a write served as leader whose reply left `seconds` after the request arrived. */
  observeReplied(seconds: number): void {
    this.phase.replied.observe(seconds);
  }

  /**
   * Vertical Paxos messages each replica here ignored, read at scrape time:
   * `cohort_vpaxos_ignored_messages_total{group,reason,type}`, `reason` being
   * `stale` (a ballot below the replica's promise) or `unknown` (a ballot it
   * takes part in none of).
   */
  vpaxosIgnored(read: () => { group: string; stale: Partial<Record<string, number>>; unknown: number }[]): void {
    new Counter({
      name: 'cohort_vpaxos_ignored_messages_total',
      help: 'Vertical Paxos messages a replica ignored for their ballot: stale (below its promise) or unknown',
      labelNames: ['group', 'reason', 'type'] as const,
      registers: [this.registry],
      collect() {
        // The engines keep the running totals; publish them as they are.
        this.reset();
        for (const g of read()) {
          for (const [type, n] of Object.entries(g.stale)) this.inc({ group: g.group, reason: 'stale', type }, n ?? 0);
          this.inc({ group: g.group, reason: 'unknown', type: 'any' }, g.unknown);
        }
      },
    });
  }

  /**
   * The circuit breakers of forwarding, one per peer, read at scrape time:
   * `cohort_forward_circuit_state{peer}` (0 closed, 1 half-open: its next
   * forward probes, 2 open: forwards to it refused), and the times each
   * opened and the forwards it refused at once (CIRCUIT_OPEN).
   */
  circuitBreakers(read: () => CircuitBreakerStats[]): void {
    const level: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 };
    new Gauge({
      name: 'cohort_forward_circuit_state',
      help: 'State of the circuit breaker of forwarding to each peer: 0 closed, 1 half-open (probing), 2 open (refusing)',
      labelNames: ['peer'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const b of read()) this.set({ peer: b.peer }, level[b.state]);
      },
    });
    const counter = (name: string, help: string, pick: (b: CircuitBreakerStats) => number): void => {
      new Counter({
        name,
        help,
        labelNames: ['peer'] as const,
        registers: [this.registry],
        collect() {
          // The breakers keep the running totals; publish them as they are.
          this.reset();
          for (const b of read()) this.inc({ peer: b.peer }, pick(b));
        },
      });
    };
    counter(
      'cohort_forward_circuit_opens_total',
      'Times the circuit breaker of forwarding to a peer opened (too many failed forwards, or a failed probe)',
      (b) => b.opens,
    );
    counter(
      'cohort_forward_circuit_rejections_total',
      'Forwards to a peer refused at once with CIRCUIT_OPEN while its circuit breaker was open',
      (b) => b.rejections,
    );
  }

  /**
   * The store's commits, read at scrape time: `cohort_storage_commits_total`
   * (`cohort_storage_durable_commits_total` of them fsynced; the others are
   * apply transactions or purges alone), `cohort_storage_commit_jobs_total`,
   * `cohort_storage_commit_seconds_total` (time on the writer thread, fsyncs
   * included) and `cohort_storage_commit_wait_seconds_total` (time jobs waited
   * from their hand-off to the start of their commit: the writer waking up,
   * or still committing earlier jobs). Against
   * `cohort_raft_store_write_seconds_total` (the wait seen by the Raft host),
   * the difference is the hand-off to and from the writer thread. And the
   * gauge `cohort_storage_apply_hold_seconds`: how long the writer holds apply
   * transactions now (`--writer-apply-batch-ms` is its most).
   */
  storeCounters(read: () => WriterStats): void {
    const counter = (name: string, help: string, pick: (s: WriterStats) => number): void =>
      this.runningTotal(name, help, () => pick(read()));
    counter('cohort_storage_commits_total', 'Transactions committed to the node database', (s) => s.commits);
    counter(
      'cohort_storage_commit_jobs_total',
      'Write jobs committed (log writes, apply transactions, acceptor writes); several share a transaction',
      (s) => s.jobs,
    );
    counter(
      'cohort_storage_commit_seconds_total',
      'Time the commits took on the writer thread, fsyncs included',
      (s) => s.commitMs / 1000,
    );
    counter(
      'cohort_storage_durable_commits_total',
      'Transactions committed with an fsync (the others held only apply transactions or purges, made durable by the next)',
      (s) => s.durableCommits,
    );
    counter(
      'cohort_storage_commit_wait_seconds_total',
      'Time write jobs waited from their hand-off to the writer thread to the start of their commit (its wake-up, earlier commits)',
      (s) => s.waitMs / 1000,
    );
    new Gauge({
      name: 'cohort_storage_apply_hold_seconds',
      help: 'How long the writer thread holds apply transactions to commit them together (less while their commits cost much an op)',
      registers: [this.registry],
      collect() {
        this.set(read().applyHoldMs / 1000);
      },
    });
  }

  /**
   * The store's read ahead (see `ReadAhead` in @cohort/storage), read at scrape time:
   * `cohort_storage_read_ahead` (1 while on), `cohort_storage_read_ahead_keys_total{outcome}` (keys
   * read ahead, or dropped with the thread behind) and `cohort_storage_cold_reads_total{thread}`
   * (point reads that went to the disk: on the event loop, each of which held it, or on the
   * read-ahead thread).
   */
  readAhead(read: () => ReadAheadStats): void {
    new Gauge({
      name: 'cohort_storage_read_ahead',
      help: '1 while the store reads rows ahead of the event loop on a thread of its own (in auto mode: while reads go to the disk)',
      registers: [this.registry],
      collect() {
        this.set(read().on ? 1 : 0);
      },
    });
    this.runningTotals(
      'cohort_storage_read_ahead_keys_total',
      'Keys the store read ahead of the event loop (read), or dropped because its thread was behind (dropped)',
      'outcome',
      () => {
        const s = read();
        return { read: s.read, dropped: s.dropped };
      },
    );
    this.runningTotals(
      'cohort_storage_cold_reads_total',
      'Point reads of KV rows slow enough to have gone to the disk: on the event loop (loop), each holding it, or on the read-ahead thread (ahead)',
      'thread',
      () => {
        const s = read();
        return { loop: s.coldHere, ahead: s.coldThere };
      },
    );
  }

  /**
   * The store's row cache (`--row-cache-bytes`), read at scrape time:
   * `cohort_storage_row_cache_reads_total{outcome}` (reads of a KV row
   * answered from it, `hit`: clients' and applies' of the row a write
   * replaces; clients' read from the file, `miss`),
   * `cohort_storage_row_cache_admitted_total` (misses that cached their row:
   * a key is cached on its second miss), `cohort_storage_row_cache_written_total`
   * (rows writes cached: a cached key's new row, or the row of a key read or
   * written recently) and `cohort_storage_row_cache_bytes`.
   */
  rowCache(read: () => KvRowCacheStats): void {
    this.runningTotals(
      'cohort_storage_row_cache_reads_total',
      "Reads of KV rows answered from the row cache (hit: clients' and applies' of the row a write replaces) and clients' reads from the file (miss)",
      'outcome',
      () => {
        const s = read();
        return { hit: s.hits, miss: s.misses };
      },
    );
    this.runningTotal(
      'cohort_storage_row_cache_admitted_total',
      'Rows the row cache took in: a key is cached on its second miss while the first is remembered',
      () => read().admitted,
    );
    this.runningTotal(
      'cohort_storage_row_cache_written_total',
      "Rows writes cached: a cached key's new row, or the row of a key read or written recently (every replica applies every write)",
      () => read().written,
    );
    new Gauge({
      name: 'cohort_storage_row_cache_bytes',
      help: 'Bytes the row cache holds (keys, values and per-row overhead), within --row-cache-bytes',
      registers: [this.registry],
      collect() {
        this.set(read().bytes);
      },
    });
  }

  /**
   * The disk, read at scrape time: `cohort_disk_full` (1 while the node
   * refuses writes because its disk is full) and
   * `cohort_storage_commit_waiting_for_space_seconds` (how long a commit has
   * waited for space, retried by the store; 0 when none waits).
   */
  diskFull(read: () => { full: boolean; waitingSince: number | undefined }): void {
    new Gauge({
      name: 'cohort_disk_full',
      help: '1 while the node refuses writes because its disk is full (free space under the reserve, or a commit waiting for space)',
      registers: [this.registry],
      collect() {
        this.set(read().full ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cohort_storage_commit_waiting_for_space_seconds',
      help: 'How long a commit has waited for disk space (rolled back and retried in order by the store); 0 when none waits',
      registers: [this.registry],
      collect() {
        const since = read().waitingSince;
        this.set(since === undefined ? 0 : (Date.now() - since) / 1000);
      },
    });
  }

  /** A counter whose running total is kept elsewhere (a host, a store) and published as is at scrape time. */
  private runningTotal(name: string, help: string, total: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(total());
      },
    });
  }

  /** {@link runningTotal} of several totals told apart by one label, its values the keys of `totals()`. */
  private runningTotals(name: string, help: string, label: string, totals: () => Record<string, number>): void {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [value, n] of Object.entries(totals())) this.inc({ [label]: value }, n);
      },
    });
  }

  /** The Raft host's counters, read at scrape time. */
  private hostCounters(read: () => HostStats): void {
    const counter = (name: string, help: string, pick: (s: HostStats) => number): void =>
      this.runningTotal(name, help, () => pick(read()));
    counter('cohort_raft_ready_rounds_total', 'Ready rounds processed', (s) => s.rounds);
    counter(
      'cohort_raft_ready_rounds_overlapped_total',
      "Ready rounds taken while an earlier round's store write was still in flight (pipelined)",
      (s) => s.roundsOverlapped,
    );
    counter(
      'cohort_raft_store_writes_total',
      'Durable store writes (one per round at most: group commit)',
      (s) => s.storeWrites,
    );
    counter(
      'cohort_raft_read_index_rounds_total',
      'ReadIndex rounds started: each confirms the leadership for the batch of linearizable reads that waited for it',
      (s) => s.readRounds,
    );
    counter(
      'cohort_raft_read_index_hedges_total',
      'ReadIndex rounds that asked the rest of the followers after raft.readIndexHedgeMs (the quorum asked first was slow to answer)',
      (s) => s.readHedges,
    );
    counter(
      'cohort_raft_apply_pauses_total',
      "Times applying paused until the store's writer thread caught up with the applied transactions",
      (s) => s.applyPauses,
    );
    counter(
      'cohort_raft_store_write_seconds_total',
      'Time spent in durable store writes',
      (s) => s.storeWriteMs / 1000,
    );
    counter('cohort_raft_entries_persisted_total', 'Log entries persisted', (s) => s.entriesPersisted);
    counter('cohort_raft_entries_applied_total', 'Log entries applied', (s) => s.entriesApplied);
    counter('cohort_raft_messages_sent_total', 'Raft messages handed to the transport', (s) => s.messagesSent);
    counter(
      'cohort_raft_messages_sent_before_write_total',
      'Appends, heartbeats and heartbeat answers sent while store writes of their round or earlier ones were in flight',
      (s) => s.messagesSentBeforeWrite,
    );
    counter('cohort_raft_send_failures_total', 'Raft frames that could not be delivered', (s) => s.sendFailures);
    counter('cohort_raft_snapshots_taken_total', 'Snapshots taken locally', (s) => s.snapshotsTaken);
    counter('cohort_raft_snapshots_restored_total', 'Snapshots installed from a leader', (s) => s.snapshotsRestored);
    counter(
      'cohort_raft_followers_lost_entries_total',
      'Followers found, as leader, to have lost entries they acknowledged (storage wiped or replaced)',
      (s) => s.followersLostEntries,
    );
    counter(
      'cohort_replica_repairs_total',
      'Times this node found its copy of a partition corrupt and began restoring it from a healthy replica',
      (s) => s.replicaRepairs,
    );
    counter(
      'cohort_replica_repairs_done_total',
      'Repairs finished: the partition was restored from a healthy replica and serves again',
      (s) => s.replicaRepairsDone,
    );
    counter('cohort_raft_groups_quiesced_total', 'Times a group went quiescent here', (s) => s.groupsQuiesced);
    counter('cohort_raft_groups_woken_total', 'Times a quiescent group woke here', (s) => s.groupsWoken);
    counter(
      'cohort_raft_heartbeat_frames_sent_total',
      'Frames of coalesced heartbeats sent (one per peer per round for all shared groups)',
      (s) => s.heartbeatFramesSent,
    );
    counter(
      'cohort_raft_heartbeats_coalesced_total',
      'Heartbeats and answers carried in coalesced frames',
      (s) => s.heartbeatsCoalesced,
    );
  }
}
