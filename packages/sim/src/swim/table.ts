import { churn, detection, massFailure, partition, stability } from './scenarios.js';
import { median, percentile } from './stats.js';

/** How much to simulate: `full` for the README, `quick` for a smoke run. */
export interface TableOptions {
  readonly sizes: readonly number[];
  /** Simulated milliseconds of each stability run. */
  readonly stabilityMs: (size: number) => number;
  /** Crash trials per size. */
  readonly crashes: (size: number) => number;
  /** Churn rounds per size. */
  readonly churnRounds: (size: number) => number;
  /** Called with progress lines. */
  readonly progress?: (line: string) => void;
}

/** The README's settings. */
export const fullTable: TableOptions = {
  sizes: [10, 50, 100, 500],
  stabilityMs: (n) => (n >= 500 ? 20_000 : n >= 100 ? 120_000 : 600_000),
  crashes: (n) => (n >= 500 ? 10 : n >= 100 ? 16 : 64),
  churnRounds: (n) => (n >= 500 ? 3 : 10),
};

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f0 = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const mp = (xs: readonly number[]): string => `${f1(median(xs))} / ${f1(percentile(xs, 99))}`;

/** Runs every scenario and renders the markdown tables. Deterministic: seeds are fixed. */
export function swimTable(o: TableOptions = fullTable): string {
  const say = o.progress ?? (() => {});
  const out: string[] = [];
  out.push('Times are in protocol periods (1 s); "m / p99" is median / 99th percentile (nearest rank).', '');
  out.push(
    '| members | crashes | crash → first suspicion | crash → all suspect | crash → all dead | msgs/member/s (no faults) | bytes/member/s (no faults) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const n of o.sizes) {
    say(`detection, ${n} members`);
    const crashes = o.crashes(n);
    const perRun = n >= 100 ? crashes : 1;
    const runs = Array.from({ length: crashes / perRun }, (_, i) => detection(n, 1000 + n + i, perRun));
    const all = (k: 'firstDetection' | 'allSuspect' | 'allDead'): number[] => runs.flatMap((r) => [...r[k]]);
    say(`load, ${n} members`);
    const clean = stability(n, 2000 + n, Math.min(60_000, o.stabilityMs(n)));
    const missed = runs.reduce((s, r) => s + r.incomplete, 0);
    out.push(
      `| ${n} | ${crashes}${missed ? ` (${missed} incomplete)` : ''} | ${mp(all('firstDetection'))} | ${mp(all('allSuspect'))} | ${mp(all('allDead'))} | ${f1(clean.messagesPerMemberSecond)} | ${f0(clean.bytesPerMemberSecond)} |`,
    );
  }
  out.push(
    '',
    '**20% message loss, and slow members** (10% of members, at least one, whose messages wait 3 periods each way):',
    '',
  );
  out.push(
    '| members | simulated | loss: false suspicions / member-hour | loss: false dead / member-hour | loss: msgs/member/s | loss: bytes/member/s | slow: false suspicions / member-hour | slow: false dead / member-hour |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const n of o.sizes) {
    say(`loss and slow members, ${n} members`);
    const ms = o.stabilityMs(n);
    const loss = stability(n, 3000 + n, ms, { dropRate: 0.2 });
    const slow = stability(n, 4000 + n, ms, { slowCount: Math.max(1, Math.round(n / 10)) });
    out.push(
      `| ${n} | ${ms / 1000} s | ${f1(loss.falseSuspicionsPerMemberHour)} | ${f1(loss.falseDeadPerMemberHour)} (${loss.falseDead}) | ${f1(loss.messagesPerMemberSecond)} | ${f0(loss.bytesPerMemberSecond)} | ${f1(slow.falseSuspicionsPerMemberHour)} | ${f1(slow.falseDeadPerMemberHour)} (${slow.falseDead}) |`,
    );
  }
  out.push('', '**Churn**: every 5 s one member leaves gracefully and a new one joins through a random member.', '');
  out.push(
    '| members | rounds | join known by all (m / p99) | leave known by all (m / p99) | dead declarations |',
    '| ---: | ---: | ---: | ---: | ---: |',
  );
  for (const n of o.sizes) {
    say(`churn, ${n} members`);
    const r = churn(n, 5000 + n, o.churnRounds(n));
    out.push(`| ${n} | ${r.joins} | ${mp(r.joinKnownByAll)} | ${mp(r.leaveKnownByAll)} | ${r.falseDead} |`);
  }
  say('partition and mass failure');
  const p = partition(6001);
  const m = massFailure(6002);
  out.push('', '**Five members**:', '');
  out.push('| scenario | result |', '| --- | --- |');
  out.push(`| 3-2 partition: split → each side holds the other dead | ${f1(p.splitDetected)} periods |`);
  out.push(
    `| 3-2 partition, 60 s in: minority side / majority side | ${p.minorityStatus.kind}${p.minorityStatus.kind === 'partitioned' ? ` (minority: ${p.minorityStatus.minority})` : ''} / ${p.majorityStatus.kind} |`,
  );
  out.push(`| 3-2 partition: heal → all five alive everywhere | ${f1(p.healed)} periods |`);
  out.push(`| 3 of 5 crash at once: first suspicion of each | ${m.firstDetection.map(f1).join(', ')} periods |`);
  out.push(`| 3 of 5 crash at once: survivors hold all three dead | ${f1(m.allDead)} periods |`);
  out.push(
    `| 3 of 5 crash at once: survivors' detector says partitioned (30 s grace) | ${f1(m.partitioned)} periods (minority: ${m.finalStatus.kind === 'partitioned' && m.finalStatus.minority}) |`,
  );
  return out.join('\n');
}

const START = '<!-- swim-table:start -->';
const END = '<!-- swim-table:end -->';

/** Replaces the generated section of `readme` (between the swim-table markers) with `table`. */
export function spliceTable(readme: string, table: string, command: string): string {
  const body = `${START}\n<!-- generated by \`${command}\`; do not edit by hand -->\n\n${table}\n\n${END}`;
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a >= 0 && b > a) return readme.slice(0, a) + body + readme.slice(b + END.length);
  return `${readme.trimEnd()}\n\n## Measured behaviour\n\n${body}\n`;
}
