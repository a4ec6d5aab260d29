#!/usr/bin/env node
import type { LogFields, Logger } from '@cohort/core';
import { Command, InvalidArgumentError } from 'commander';
import { PLACEMENT_COVERAGE_KINDS, missingPlacementCoverage } from './coverage.js';
import { PLACEMENT_GOALS } from './goals.js';
import { type PlacementRunOptions, runPlacementSeed, runPlacementSeeds } from './placement-run.js';

function int(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

/** Prints the meta services' log lines (one seed, `--verbose`). */
function consoleLogger(fields: LogFields = {}): Logger {
  const line = (level: string) => (msg: string, f?: LogFields) =>
    console.log(`${level} ${msg} ${JSON.stringify({ ...fields, ...f })}`);
  return {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child: (f) => consoleLogger({ ...fields, ...f }),
  };
}

const program = new Command()
  .name('cohort-sim-placement')
  .description(
    'Runs partitioned clusters (meta group, placement controller, partitions) from seeds under joins, deaths, leaves, restarts and partitions; checks the invariants and linearizability.',
  )
  .option('--seed <n>', 'run one seed and print what it did (replays a failure exactly)', int('--seed'))
  .option('--seeds <count>', 'run this many seeds', int('--seeds'), 20)
  .option('--from <n>', 'first seed of a batch', int('--from'), 1)
  .option('--episodes <n>', 'fault episodes per seed after the joins', int('--episodes'), 3)
  .option('--verbose', 'with --seed: print the meta services log');

async function main(): Promise<void> {
  const o = program.parse().opts<{ seed?: number; seeds: number; from: number; episodes: number; verbose?: boolean }>();
  const options: PlacementRunOptions = { episodes: o.episodes };
  if (o.seed !== undefined) {
    const r = await runPlacementSeed(o.seed, o.verbose ? { ...options, logger: consoleLogger() } : options);
    console.log(JSON.stringify(r, null, 2));
    return;
  }
  const s = await runPlacementSeeds(o.from, o.seeds, options, (r) => {
    console.log(
      `seed ${r.seed}: ${r.episodes.join(',')}; ${r.reconfigurations} reconfigurations, ${r.ops.completed}/${r.ops.total} ops, ${Math.round(r.simMs / 1000)} s simulated in ${Math.round(r.cpuMs)} ms CPU, trace ${r.traceHash}`,
    );
  });
  console.log(
    `${s.seeds} seeds, ${Math.round(s.simMs / 1000)} s simulated, ${s.ops.completed}/${s.ops.total} ops completed, ${Math.round(s.wallMs)} ms wall, ${Math.round(s.cpuMs)} ms CPU`,
  );
  console.log(`  episodes: ${JSON.stringify(s.episodes)}`);
  for (const k of PLACEMENT_COVERAGE_KINDS) console.log(`  ${k}: ${s.coverage[k]}`);
  const missing = missingPlacementCoverage(s.coverage, PLACEMENT_GOALS);
  if (missing.length > 0) {
    console.error(`never reached: ${missing.join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
