#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=50
import { ConfigError } from '@cohort/core/errors';
import { Command, CommanderError } from 'commander';
import type { StartFlags } from './config.js';
import { addEnvVars, registerOpsCommands } from './ops-cli.js';

/** Exit status for bad usage or configuration. */
const EXIT_USAGE = 2;
/** Exit status when the node's storage failed (a failed write, or data failing its checksum). */
const EXIT_STORAGE = 3;

/** Commander's accumulator of a repeatable option. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function fail(message: string, code = EXIT_USAGE): never {
  process.stderr.write(`cohort: ${message}\n`);
  process.exit(code);
}

async function start(flags: StartFlags): Promise<void> {
  // First, before anything else loads (the configuration's module alone takes ~0.7 s): this process
  // again, with Node's code on huge pages where it can be (see large-pages.ts); the new image reads the
  // configuration. Returns only where it does not run again.
  const { reexecOnLargePages, hugePageBytes, mallocHugePages } = await import('./large-pages.js');
  const largePages = reexecOnLargePages();
  // The configuration's schema and the node's modules load only here: the client commands (`kv get`,
  // `status`, ...) start in a fraction of the time without libp2p, SQLite and the schema.
  const { loadNodeOptions } = await import('./config.js');
  let options: ReturnType<typeof loadNodeOptions>;
  try {
    options = loadNodeOptions(flags);
  } catch (err) {
    if (err instanceof ConfigError)
      fail(err.message.startsWith('invalid configuration') ? err.message : `invalid configuration: ${err.message}`);
    throw err;
  }
  // Loaded only now, so usage and configuration errors answer without loading libp2p and SQLite.
  const [{ CohortNode }, { openStore }, { createLogger }, { storeLimits }] = await Promise.all([
    import('./cohort-node.js'),
    import('./open-store.js'),
    import('./logger.js'),
    import('./raft-settings.js'),
  ]);
  const id = options.config.node.id;
  const log = createLogger(options.logLevel, { node: id });
  const huge = hugePageBytes();
  const mallocHuge = mallocHugePages(process.env);
  log.info("Node's code on huge pages", {
    ...(huge === undefined ? {} : { hugePagesMB: Math.round(huge / 1048576) }),
    why: largePages,
    ...(mallocHuge === undefined ? {} : { mallocHugetlb: mallocHuge }),
  });
  const node = new CohortNode(
    options,
    (dir) =>
      openStore(dir, log.child({ component: 'storage' }), storeLimits(options.config.raft), {
        ...(options.rowCacheBytes === undefined ? {} : { rowCacheBytes: options.rowCacheBytes }),
        ...(options.pageCacheBytes === undefined ? {} : { pageCacheBytes: options.pageCacheBytes }),
        ...(options.writerApplyBatchMs === undefined ? {} : { writerApplyBatchMs: options.writerApplyBatchMs }),
        ...(options.readAhead === undefined ? {} : { readAhead: options.readAhead }),
      }),
    log,
  );
  let stopping = false;
  node.onFatal = () => {
    stopping = true;
    node.stop().finally(() => process.exit(EXIT_STORAGE));
  };
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal, timeoutMs: options.shutdownTimeoutMs });
    // Past the budget (and a second for the last phase), the process stops as it is.
    setTimeout(() => {
      log.error('graceful shutdown took too long; stopping now', { timeoutMs: options.shutdownTimeoutMs });
      process.exit(1);
    }, options.shutdownTimeoutMs + 1000).unref();
    node.stop().then(
      () => process.exit(0),
      (err: Error) => {
        log.error('shutdown failed', { err: err.message });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  try {
    await node.start();
  } catch (err) {
    log.error('node failed to start', { err: (err as Error).message, name: (err as Error).name });
    await node.stop().catch(() => {});
    if (err instanceof ConfigError) fail(err.message);
    fail(`node ${id} failed to start: ${(err as Error).message}`, 1);
  }
}

const program = new Command('cohort')
  .description(
    'Cohort: a distributed, strongly consistent key-value store (Raft, SQLite, libp2p; Redis protocol and HTTP)',
  )
  .version('0.1.0')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command('start')
  .description('run one node of a cluster')
  .option('-c, --config <file>', 'JSON config file (flags override its fields)')
  .option('--id <id>', "this node's id, e.g. n1")
  .option('--data-dir <dir>', 'where the database and peer identity live')
  .option('--listen <host:port>', 'peer (Raft) listen address; defaults to this node in --peers')
  .option('--advertise <host:port>', 'peer address others dial, when --listen binds a wildcard')
  .option('--resp <host:port>', 'Redis-protocol listen address (default 127.0.0.1:6379)')
  .option('--http <host:port>', 'HTTP listen address (default 127.0.0.1:8080)')
  .option(
    '--peers <list>',
    'founding members, id=host:port comma-separated, this node included (default: just this node)',
  )
  .option(
    '--join [host:port]',
    'join a running cluster instead of founding one. With the HTTP address of a member: the node registers through it and the cluster places replicas on it. Without: it waits until a member adds it (cohort cluster add <id>); --peers lists the members to contact and this node',
  )
  .option(
    '--tag <key=value>',
    'a tag of this node, e.g. zone=a (repeatable); replicas spread across zones',
    collect,
    [],
  )
  .option('--dead-grace <ms>', 'how long a node stays dead before its replicas are replaced elsewhere (default 30000)')
  .option(
    '--stuck-after <ms>',
    'a partition shows stuck in /v1/partitions once entries wait this long with no commit progress (default 10000)',
  )
  .option('--meta-voters <n>', 'voters of the meta group (node registry and partition map): 3 or 5 (default 3)')
  .option('--swim-probe-ms <n>', 'failure detector probe interval (default 1000)')
  .option(
    '--partitions <n>',
    'partitions of the key space, each its own Raft group; fixed when the cluster is created (default 1)',
  )
  .option('--replicas <n>', 'replicas of each partition, at most the founding members (default min(3, members))')
  .option(
    '--partition-engine <engine>',
    "replication of a new cluster's partitions: raft (2f+1 replicas) or vpaxos (Vertical Paxos II, f+1 replicas, reconfigured by the master on the meta group); needs --partitions 2 or more for vpaxos (default raft)",
  )
  .option('--partition-engines <list>', 'per-partition engines of a new cluster, e.g. 1=vpaxos,3=vpaxos')
  .option(
    '--min-replicas-to-write <n>',
    'a vpaxos primary refuses writes while its partition has fewer copies, e.g. after a failover to a lone survivor (default 1)',
  )
  .option(
    '--vpaxos-compact-slots <n>',
    'a vpaxos replica drops its acceptor votes once this many slots were applied past its last compaction point; a replica lacking compacted slots receives the partition snapshot (default 10000; 0: keep every vote)',
  )
  .option(
    '--vpaxos-compact-bytes <n>',
    'a vpaxos replica also drops its acceptor votes once those it holds in memory reach this many bytes of values (default 67108864; 0: slots alone)',
  )
  .option(
    '--vpaxos-read-lease-ms <n>',
    'a vpaxos primary serves reads locally under a lease of this many ms, renewed by its heartbeats; a failover of the primary waits it out; the same on every node (default 0: off, every read confirmed with every replica)',
  )
  .option(
    '--vpaxos-lease-max-drift-ms <n>',
    'the most a lease outlasts its duration by clock drift: the master waits lease + drift before activating a new primary (default a tenth of the lease, at least 50)',
  )
  .option('--heartbeat-ms <n>', 'heartbeat interval and Raft tick (default 100)')
  .option('--election-timeout-ms <n>', 'minimum election timeout; the maximum is twice it unless set (default 500)')
  .option('--election-timeout-max-ms <n>', 'maximum election timeout (default twice the minimum: 1000)')
  .option('--snapshot-entries <n>', 'applied entries between snapshots (default 10000)')
  .option('--snapshot-bytes <n>', 'bytes of log entries between snapshots (default 104857600)')
  .option('--max-log-bytes <n>', 'refuse writes while the uncompacted log holds this many bytes (default 524288000)')
  .option('--max-append-bytes <n>', 'most bytes of entries in one append to a follower (default 1048576)')
  .option('--max-inflight-appends <n>', 'most appends in flight to one follower (default 256)')
  .option(
    '--commit-notice-delay-ms <n>',
    'how long a new commit index waits for the next append to carry it to followers; 0 sends it at once (default 5)',
  )
  .option(
    '--read-index-hedge-ms <n>',
    'a linearizable read asks a quorum of followers to confirm the leadership, the rest after this many ms; 0 asks all at once (default 5)',
  )
  .option(
    '--max-inflight-bytes <n>',
    'most bytes of entries in flight to one follower, at least --max-append-bytes (default 33554432)',
  )
  .option(
    '--snapshot-rate <n>',
    'bytes per second one snapshot transfer sends to a catching-up follower; 0 for no limit (default 16777216)',
  )
  .option(
    '--snapshot-rate-min <n>',
    'the slowest a snapshot transfer goes while it backs off for the writes served meanwhile; at or above --snapshot-rate the rate is fixed (default 1048576)',
  )
  .option('--quiesce', 'idle groups stop heartbeats; peer failures come from the failure detector (default off)')
  .option('--request-timeout-ms <n>', 'client request timeout (default 5000)')
  .option(
    '--row-cache-bytes <n>',
    'bytes of KV rows recently read or written kept in memory, shared by the partitions; 0 for none (default 16777216: 16 MiB)',
  )
  .option(
    '--writer-apply-batch-ms <n>',
    "the most the store's writer thread holds apply transactions to commit them in one (log writes commit ahead meanwhile; the hold shrinks while such commits read most of their pages from the file system); 0 commits them with the next commit (default 100)",
  )
  .option(
    '--page-cache-bytes <n>',
    "SQLite's page cache of each of the store's two long-lived connections (the event loop's reads, the writer thread's), in bytes (default 4194304: 4 MiB)",
  )
  .option(
    '--read-ahead <mode>',
    'read the rows of keys about to be applied on a thread of their own first, so a page the disk must bring does not hold the event loop: auto (while reads go to the disk), on or off (default auto)',
  )
  .option('--consistency-check-ms <n>', 'how often the leader checks that replicas agree; 0 for never (default 600000)')
  .option('--log-level <level>', 'debug, info, warn, error or silent (default info)')
  .option(
    '--cluster-secret-file <file>',
    'file holding the cluster secret (16+ characters, or a libp2p swarm.key); peers without it cannot connect',
  )
  .option('--requirepass <password>', 'password of the default user: RESP clients must AUTH (default none)')
  .option('--metrics-token <token>', 'bearer token GET /metrics requires (default: open)')
  .option('--tls-cert <file>', 'PEM certificate chain: RESP and HTTP serve TLS (with --tls-key)')
  .option('--tls-key <file>', 'PEM private key of --tls-cert')
  .option('--max-key-bytes <n>', 'longest key a client may write (default 65536)')
  .option('--max-value-bytes <n>', 'longest value a client may write (default 1048576)')
  .option('--max-command-bytes <n>', 'most key and value bytes in one write, e.g. an MSET (default 8388608)')
  .option(
    '--max-txn-keys <n>',
    'most keys of one transaction across partitions (MSET, DEL, EXEC, POST /v1/txn); more are refused (default 1024)',
  )
  .option('--max-clients <n>', 'most RESP connections at once (default 10000)')
  .option('--max-query-bytes <n>', 'most argument bytes of one RESP command buffered (default 33554432)')
  .option('--output-buffer-hard-bytes <n>', 'close a RESP client with more unsent replies (default 268435456)')
  .option(
    '--output-buffer-soft-bytes <n>',
    'close a RESP client with more unsent replies, or that leaves its replies unread while commands wait, for --output-buffer-soft-seconds (default 33554432)',
  )
  .option('--output-buffer-soft-seconds <n>', 'see --output-buffer-soft-bytes (default 30)')
  .option('--max-http-requests <n>', 'HTTP requests served at once; more answer 503 BUSY (default 4096)')
  .option('--shutdown-timeout-ms <n>', 'budget of a graceful stop (SIGTERM) before it is forced (default 10000)')
  .addHelpText(
    'after',
    `
Example (a 3-node cluster, one command per node; n2 and n3 alike):
  $ cohort start --id n1 --data-dir ./n1 --peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003 \\
      --resp 127.0.0.1:6380 --http 127.0.0.1:8080
Joining a running cluster as n4, then adding it from any machine:
  $ cohort start --id n4 --data-dir ./n4 --join --peers n1=127.0.0.1:7001,n4=127.0.0.1:7004 --http 127.0.0.1:8083
  $ cohort cluster add n4 && cohort cluster promote n4
Every flag can come from the environment: COHORT_<FLAG> (COHORT_DATA_DIR, COHORT_PEERS, ...), the listen
addresses from COHORT_HTTP_LISTEN and COHORT_RESP_LISTEN.`,
  )
  .action((flags: StartFlags) => start(flags));

program
  .command('dev')
  .description('run a local 3-node cluster as child processes, data under ./.cohort-dev')
  .option('--dir <dir>', 'data directory', '.cohort-dev')
  .option('--nodes <n>', 'number of nodes', '3')
  .option('--resp-port <port>', 'RESP port of the first node (next nodes +1)', '6380')
  .option('--http-port <port>', 'HTTP port of the first node', '8080')
  .option('--peer-port <port>', 'peer port of the first node', '7001')
  .option('--log-level <level>', 'log level of the nodes', 'info')
  .option('--partitions <n>', 'partitions of the key space, for a new cluster', '1')
  .addHelpText(
    'after',
    `
Example:
  $ cohort dev                  # n1..n3: RESP 6380-6382, HTTP 8080-8082
  $ cohort dev --nodes 5 --dir /tmp/cohort-dev
  $ cohort dev --partitions 4   # then: redis-cli -c -p 6380, or ioredis' Redis.Cluster`,
  )
  .action(async (o: Record<string, string>) => {
    const n = Number(o.nodes);
    if (!Number.isInteger(n) || n < 1 || n > 9) fail(`--nodes must be 1..9, got ${o.nodes}`);
    const partitions = Number(o.partitions);
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > 16384)
      fail(`--partitions must be 1..16384, got ${o.partitions}`);
    const { runDevCluster } = await import('./dev-cluster.js');
    const code = await runDevCluster({
      dir: o.dir!,
      nodes: n,
      respPort: Number(o.respPort),
      httpPort: Number(o.httpPort),
      peerPort: Number(o.peerPort),
      logLevel: o.logLevel!,
      partitions,
    });
    process.exit(code);
  });

program
  .command('check <dataDir>')
  .description("verify a stopped node's data directory (checksums, log continuity, snapshots)")
  .option('--json', 'print the full report as JSON')
  .addHelpText('after', '\nExample:\n  $ cohort check ./.cohort-dev/n1')
  .action(async (dataDir: string, o: { json?: boolean }) => {
    const { checkDataDir } = await import('./check.js');
    process.exit(checkDataDir(dataDir, o.json === true));
  });

registerOpsCommands(program);
addEnvVars(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  }
  throw err;
}
