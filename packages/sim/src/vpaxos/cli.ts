#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { VP_COVERAGE_KINDS, VP_META_COVERAGE_KINDS, missingVpCoverage } from './coverage.js';
import { type VpRunOptions, runVpSeed, runVpSeeds } from './run.js';

function int(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

const program = new Command()
  .name('cohort-sim-vpaxos')
  .description('Runs Vertical Paxos II groups from seeds under faults; checks safety invariants and linearizability.')
  .option('--seed <n>', 'run one seed and print what it did (replays a failure exactly)', int('--seed'))
  .option('--seeds <count>', 'run this many seeds', int('--seeds'), 20)
  .option('--from <n>', 'first seed of a batch', int('--from'), 1)
  .option('--sim-seconds <s>', 'simulated seconds of faults per seed', int('--sim-seconds'))
  .option('--no-faults', 'no crashes or partitions (clients only)')
  .addOption(
    new Option('--reads <mode>', 'mixed: a third of the seeds read by lease; safe: none; lease: all')
      .choices(['mixed', 'safe', 'lease'])
      .default('mixed'),
  )
  .addOption(
    new Option(
      '--master <where>',
      "reliable: one master process that never fails; meta: the node's master on a simulated meta group",
    )
      .choices(['reliable', 'meta'])
      .default('reliable'),
  )
  .addOption(
    new Option(
      '--compaction <mode>',
      'acceptor compaction: mixed (half the seeds, small thresholds), on (every seed), off (acceptors keep every vote)',
    )
      .choices(['mixed', 'on', 'off'])
      .default('mixed'),
  );

async function main(): Promise<void> {
  const o = program.parse().opts<{
    seed?: number;
    seeds: number;
    from: number;
    simSeconds?: number;
    faults: boolean;
    reads: 'mixed' | 'safe' | 'lease';
    master: 'reliable' | 'meta';
    compaction: 'mixed' | 'on' | 'off';
  }>();
  const options: VpRunOptions = { reads: o.reads, master: o.master, compaction: o.compaction };
  if (o.simSeconds !== undefined) options.simMs = o.simSeconds * 1000;
  if (!o.faults) options.faults = false;
  if (o.seed !== undefined) {
    const r = await runVpSeed(o.seed, options);
    console.log(JSON.stringify(r, null, 2));
    return;
  }
  const s = await runVpSeeds(o.from, o.seeds, options, (r) => {
    console.log(
      `seed ${r.seed}: ${r.ops.completed}/${r.ops.total} ops, ${r.failovers} failovers, ${r.events} events, ${Math.round(r.wallMs)} ms, trace ${r.traceHash}`,
    );
  });
  console.log(`${s.seeds} seeds, ${s.ops.completed}/${s.ops.total} ops completed, ${Math.round(s.wallMs)} ms`);
  const kinds = o.master === 'meta' ? [...VP_COVERAGE_KINDS, ...VP_META_COVERAGE_KINDS] : VP_COVERAGE_KINDS;
  for (const k of kinds) console.log(`  ${k}: ${s.coverage[k]}`);
  console.log(`  seeds by activated ballots: ${JSON.stringify(s.depth.ballots)}`);
  console.log(`  seeds by chosen slots: ${JSON.stringify(s.depth.slots)}`);
  // Without leases there are no lease reads or lease waits to reach.
  const missing = missingVpCoverage(s.coverage, o.master === 'meta')
    .filter((k) => o.reads !== 'safe' || (k !== 'leaseRead' && k !== 'leaseWaitThenActivated'))
    .filter((k) => o.compaction !== 'off' || (k !== 'acceptorCompacted' && k !== 'snapshotInstalled'));
  if (missing.length > 0) {
    console.error(`never reached: ${missing.join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
