#!/usr/bin/env node
import { readFileSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { fullTable, spliceTable, swimTable } from './table.js';

const COMMAND = 'pnpm --filter @cohort/sim run swim-table';

const program = new Command()
  .name('swim-table')
  .description('Simulates SWIM clusters of 10 to 500 members and writes the measured table into a README.')
  .option('--write <readme>', 'replace the table section of this README (otherwise print the table)')
  .option('--quick', 'small sizes and short runs (a smoke test, not the published figures)');
program.parse();
const opts = program.opts<{ write?: string; quick?: boolean }>();

const started = performance.now();
const table = swimTable({
  ...(opts.quick ? { sizes: [10, 50], stabilityMs: () => 60_000, crashes: () => 2, churnRounds: () => 3 } : fullTable),
  progress: (line) =>
    process.stderr.write(`swim-table: ${line} (${Math.round((performance.now() - started) / 1000)} s)\n`),
});
if (opts.write) {
  writeFileSync(opts.write, spliceTable(readFileSync(opts.write, 'utf8'), table, COMMAND));
  process.stderr.write(`swim-table: wrote ${opts.write}\n`);
} else {
  process.stdout.write(`${table}\n`);
}
