#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { checkDataDir } from './check-data-dir.js';

/** `cohort-storage-check <data-dir | db-file> [--json]`: exit 0 when the data is sound, 1 when not, 2 on bad usage. */
function main(): number {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nusage: cohort-storage-check <data-dir | db-file> [--json]\n`);
    return 2;
  }
  const path = parsed.positionals[0];
  if (path === undefined || parsed.positionals.length !== 1) {
    process.stderr.write('usage: cohort-storage-check <data-dir | db-file> [--json]\n');
    return 2;
  }
  const report = checkDataDir(path);
  if (parsed.values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(`${report.file}: ${report.ok ? 'OK' : 'CORRUPT'} (schema v${report.schemaVersion})\n`);
    for (const g of report.groups) {
      process.stdout.write(
        `  group ${g.group}: entries ${g.firstIndex}..${g.lastIndex}, commit ${g.commit}, term ${g.term}, snapshot ${g.snapshotIndex}, ${g.entriesChecked} checked\n`,
      );
    }
    for (const [partition, rows] of Object.entries(report.kvRows)) {
      process.stdout.write(`  partition ${partition}: ${rows} KV rows checked\n`);
    }
    for (const f of report.findings) process.stdout.write(`  ${f.severity}: ${f.message}\n`);
  }
  return report.ok ? 0 : 1;
}

function parse() {
  return parseArgs({ allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
}

process.exitCode = main();
