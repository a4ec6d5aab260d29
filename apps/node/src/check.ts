import { checkDataDir as check } from '@cohort/storage';

/**
 * `cohort check <dataDir>`: verifies a stopped node's data (WAL, SQLite
 * integrity, CRCs, log continuity, snapshots) and prints what it found.
 * Returns the exit status: 0 sound, 1 corrupt.
 */
export function checkDataDir(dataDir: string, json: boolean): number {
  const report = check(dataDir);
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(`${report.file}: ${report.ok ? 'OK' : 'CORRUPT'} (schema v${report.schemaVersion})\n`);
    for (const g of report.groups) {
      process.stdout.write(
        `  group ${g.group}: entries ${g.firstIndex}..${g.lastIndex}, commit ${g.commit}, term ${g.term}, snapshot ${g.snapshotIndex}\n`,
      );
    }
    for (const f of report.findings) process.stdout.write(`  ${f.severity}: ${f.message}\n`);
  }
  return report.ok ? 0 : 1;
}
