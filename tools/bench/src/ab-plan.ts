// The arithmetic of `ab` (ab.ts): Cohort against itself, arms of 3-node clusters alive at once that differ in
// flags, Node flags, environment or build, runs alternated between them. On a two-vCPU machine whose pace
// drifts by a third within the hour, only arms measured side by side compare; and with the same build in
// both arms the cluster started second ran ~6% ahead in 4 of 5 pairs in both orders (README, thirty-ninth
// session), so a comparison runs a second pass with the arms started in the reverse order and reports both.
import { words } from './args.ts';
import { median } from './stats.ts';

/** One side of a comparison. */
export interface Arm {
  label: string;
  /** Extra `cohort start` flags of its nodes. */
  flags: string[];
  /** Extra Node/V8 flags of its nodes. */
  nodeFlags: string[];
  /** Variables added to its nodes' environment. */
  env: Record<string, string>;
  /** Another build's `apps/node/dist/cli.js`; undefined: this checkout's. */
  cli?: string;
}

/** What each run loads the leader with. */
export type AbWorkload = 'put' | 'get' | 'set' | 'set-pipelined';
export const AB_WORKLOADS: readonly AbWorkload[] = ['put', 'get', 'set', 'set-pipelined'];

/** One measured run of one arm. */
export interface AbRun {
  /** The pass (0: arms started in the order given, 1: reversed) and the run within it. */
  pass: number;
  run: number;
  arm: string;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU µs an operation of the arm's three processes (every thread). */
  serverUs: number;
  /** Of the leader's: its event loop, its worker threads (the store's writer), V8's helper threads (NaN if unknown). */
  leaderMainUs: number;
  leaderWorkersUs: number;
  leaderV8Us: number;
  /**
   * The leader's event loop paused for garbage collection, µs an operation (every kind), and how many of its
   * pauses were full (mark-compact) collections in the run (NaN if unknown).
   */
  leaderGcUs: number;
  leaderMajorGcs: number;
  /** Bytes written to disk an operation, over the three nodes. */
  diskBytes: number;
  /** Requests that failed (non-2xx answers, socket errors); a run with any is suspect. */
  errors: number;
}

/** One arm over one pass, against the pass's first arm (the baseline). */
export interface ArmSummary {
  label: string;
  medianOpsPerSec: number;
  medianP99Ms: number;
  medianServerUs: number;
  /** The mean over runs of this arm's rate over the baseline's in the same run; undefined for the baseline. */
  meanRatio?: number;
  /** Runs in which this arm served more than the baseline. */
  ahead?: number;
  runs: number;
}

const LABEL = /^[A-Za-z0-9_.-]+$/;

function label(spec: string, what: string, sep: string): [string, string] {
  const at = spec.indexOf(sep);
  const name = (at < 0 ? spec : spec.slice(0, at)).trim();
  if (!LABEL.test(name))
    throw new Error(`${what} '${spec}': expected a label of letters, digits, '.', '_' or '-' before '${sep}'`);
  return [name, at < 0 ? '' : spec.slice(at + 1)];
}

/** `label` or `label=<cohort start flags>`, e.g. `hold400=--writer-apply-batch-ms 400`. */
export function parseArm(spec: string): Arm {
  const [name, flags] = label(spec, '--arm', '=');
  return { label: name, flags: words(flags), nodeFlags: [], env: {} };
}

/** `label=<value>`: the value of a per-arm option (`--arm-node-flags`, `--arm-cli`). */
export function parseArmValue(spec: string, what: string): { label: string; value: string } {
  const [name, value] = label(spec, what, '=');
  if (value.trim() === '') throw new Error(`${what} '${spec}': expected label=value`);
  return { label: name, value: value.trim() };
}

/** `label:KEY=VALUE`: a variable of an arm's environment (`--arm-env`). */
export function parseArmEnv(spec: string): { label: string; key: string; value: string } {
  const [name, rest] = label(spec, '--arm-env', ':');
  const eq = rest.indexOf('=');
  const key = eq < 0 ? '' : rest.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`--arm-env '${spec}': expected label:KEY=VALUE`);
  return { label: name, key, value: rest.slice(eq + 1) };
}

/** The arms of `--arm`, with the per-arm options folded in; throws on a repeated or unknown label. */
export function buildArms(
  armSpecs: readonly string[],
  opts: { nodeFlags?: readonly string[]; env?: readonly string[]; cli?: readonly string[] } = {},
): Arm[] {
  const arms = armSpecs.map(parseArm);
  const byLabel = new Map<string, Arm>();
  for (const a of arms) {
    if (byLabel.has(a.label)) throw new Error(`--arm: the label '${a.label}' is given twice`);
    byLabel.set(a.label, a);
  }
  if (arms.length < 2) throw new Error('--arm: give at least two arms (the first is the baseline)');
  const arm = (name: string, what: string): Arm => {
    const a = byLabel.get(name);
    if (a === undefined)
      throw new Error(`${what}: no arm is labelled '${name}' (arms: ${[...byLabel.keys()].join(', ')})`);
    return a;
  };
  for (const s of opts.nodeFlags ?? []) {
    const { label: name, value } = parseArmValue(s, '--arm-node-flags');
    arm(name, '--arm-node-flags').nodeFlags.push(...words(value));
  }
  for (const s of opts.env ?? []) {
    const { label: name, key, value } = parseArmEnv(s);
    arm(name, '--arm-env').env[key] = value;
  }
  for (const s of opts.cli ?? []) {
    const { label: name, value } = parseArmValue(s, '--arm-cli');
    arm(name, '--arm-cli').cli = value;
  }
  return arms;
}

/** The order the arms start and run in, pass by pass: as given, then (`bothOrders`) reversed. */
export function passes<T>(arms: readonly T[], bothOrders: boolean): T[][] {
  return bothOrders ? [[...arms], [...arms].reverse()] : [[...arms]];
}

/** Each arm of one pass against `baseline` (its runs paired by run number). */
export function summarizePass(runs: readonly AbRun[], labels: readonly string[], baseline: string): ArmSummary[] {
  const of = (l: string): AbRun[] => runs.filter((r) => r.arm === l).sort((a, b) => a.run - b.run);
  const base = new Map(of(baseline).map((r) => [r.run, r]));
  return labels.map((l) => {
    const mine = of(l);
    const summary: ArmSummary = {
      label: l,
      medianOpsPerSec: median(mine.map((r) => r.opsPerSec)),
      medianP99Ms: median(mine.map((r) => r.p99Ms)),
      medianServerUs: median(mine.map((r) => r.serverUs)),
      runs: mine.length,
    };
    if (l === baseline) return summary;
    const pairs = mine.flatMap((r) => {
      const b = base.get(r.run);
      return b !== undefined && b.opsPerSec > 0 ? [[r.opsPerSec, b.opsPerSec] as const] : [];
    });
    if (pairs.length === 0) return summary;
    summary.meanRatio = pairs.reduce((t, [a, b]) => t + a / b, 0) / pairs.length;
    summary.ahead = pairs.filter(([a, b]) => a > b).length;
    return summary;
  });
}

/**
 * An arm's ratio over the baseline across passes: the geometric mean of each pass's mean ratio. With the
 * arms started in both orders, a bias of the start order (the same in both passes, on opposite arms)
 * cancels out of it. Undefined when a pass has no ratio for the arm.
 */
export function combinedRatio(summaries: readonly (readonly ArmSummary[])[], armLabel: string): number | undefined {
  const ratios: number[] = [];
  for (const s of summaries) {
    const r = s.find((a) => a.label === armLabel)?.meanRatio;
    if (r === undefined || !(r > 0)) return undefined;
    ratios.push(r);
  }
  if (ratios.length === 0) return undefined;
  return Math.exp(ratios.reduce((t, r) => t + Math.log(r), 0) / ratios.length);
}
