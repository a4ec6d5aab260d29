// Chaos run on real processes: `pnpm --filter @cohort/chaos chaos -- --minutes 10`
// after `pnpm turbo run build`. Exits 1 when the history is not linearizable or
// an acknowledged write is missing at the end.
import { parseArgs } from 'node:util';
import { FAULT_KINDS, runChaos } from './run.ts';

const USAGE = `usage: chaos [--minutes N] [--nodes N] [--clients N] [--partitions N] [--vpaxos P,...] [--seed N] [--stale-reads] [--keep]
  --minutes N     how long faults are injected under load (default 1)
  --nodes N       cohort processes (default 3)
  --clients N     concurrent clients (default 6)
  --partitions N  partitions of the key space, 3 replicas each (default 1); faults alternate between
                  the meta group's leader and a partition's leader
  --vpaxos P,Q    run partitions P, Q by Vertical Paxos (2 replicas; needs --partitions > 1): faults
                  then also aim at their primary
  --seed N        seed of the fault schedule and the clients (default: the time)
  --stale-reads   plant the test-only stale-read fault in every node (the check must fail)
  --keep          keep the data directories`;

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    nodes: { type: 'string', default: '3' },
    clients: { type: 'string', default: '6' },
    partitions: { type: 'string', default: '1' },
    vpaxos: { type: 'string' },
    seed: { type: 'string' },
    'stale-reads': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  // pnpm passes the `--` of `pnpm --filter @cohort/chaos chaos -- --minutes 10` through.
  args: process.argv.slice(2).filter((a) => a !== '--'),
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const minutes = Number(values.minutes);
if (!(minutes > 0)) {
  console.error(`--minutes must be a positive number, got ${values.minutes}\n${USAGE}`);
  process.exit(2);
}
const seed = values.seed === undefined ? Date.now() % 1_000_000 : Number(values.seed);
const started = Date.now();
const stamp = (): string => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s`;
console.log(
  `chaos: ${values.nodes} nodes, ${values.partitions} partition(s), ${values.clients} clients, ${minutes} min, seed ${seed}`,
);
const report = await runChaos({
  durationMs: minutes * 60_000,
  nodes: Number(values.nodes),
  clients: Number(values.clients),
  partitions: Number(values.partitions),
  ...(values.vpaxos ? { vpaxos: values.vpaxos.split(',').map(Number) } : {}),
  seed,
  staleReads: values['stale-reads'],
  keep: values.keep,
  log: (line) => console.log(`${stamp()}  ${line}`),
});
console.log(`faults injected: ${FAULT_KINDS.map((k) => `${k} ${report.faults[k]}`).join(', ')}`);
console.log(
  `operations: ${report.recordedOperations} recorded, ${report.checkedOperations} checked; clients: ${report.clientStats.ok} ok, ${report.clientStats.failed} failed, ${report.clientStats.unknown} unknown`,
);
if (Number(values.partitions) > 1) {
  console.log(
    `faults aimed at: the meta leader ${report.targets.meta}, a partition leader ${report.targets.partition}, a Vertical Paxos primary ${report.targets.primary}`,
  );
}
console.log(`reads sent to a paused leader, answered after it resumed: ${report.pausedReads}`);
console.log(
  `disk full: ${report.diskFull.degradedReported} degraded reports, ${report.diskFull.refusedWrites} writes refused, ${report.diskFull.servedReads} reads served, ${report.diskFull.commitsWaited} commits waited for space`,
);
console.log(
  `acknowledged writes read back: ${report.acknowledgedWrites - report.lostWrites.length}/${report.acknowledgedWrites}`,
);
console.log(`linearizability: ${report.linearizability.result}`);
if (values.keep) console.log(`data: ${report.root}`);
if (report.violation) {
  console.log(`VIOLATION: ${report.violation}`);
  process.exit(1);
}
