// Summarizes a V8 `.cpuprofile` (as `node --cpu-prof` writes it): the frames
// with the most self time, merged by function and source position. Run
// `node tools/scale-bench/src/profile-top.ts FILE.cpuprofile [--top N]`.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

/** The parts of a `.cpuprofile` this summary reads. */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A part of a profile, in its clock's microseconds (on Linux, `process.hrtime` of the profiled machine). */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

/** One merged frame: self time in milliseconds, its share of the profile and its samples. */
export interface FrameTime {
  frame: string;
  selfMs: number;
  share: number;
  samples: number;
}

function where(f: CallFrame): string {
  if (f.url === '') return '';
  let file = f.url;
  if (file.startsWith('file://')) file = relative(process.cwd(), fileURLToPath(file));
  // Shorten pnpm's store paths to the package's own.
  file = file.replace(/^.*node_modules\/\.pnpm\/[^/]+\/node_modules\//, '');
  return ` ${file}:${f.lineNumber + 1}`;
}

/**
 * Self time per frame, largest first. A sample's time is the gap to the next sample, capped at four
 * times the median gap: a longer one means the process was not running (a busy machine descheduled it),
 * which says nothing about the frame it happened to stop in.
 */
export function topFrames(p: CpuProfile, window?: ProfileWindow): FrameTime[] {
  const byId = new Map<number, string>();
  for (const n of p.nodes) byId.set(n.id, `${n.callFrame.functionName || '(anonymous)'}${where(n.callFrame)}`);
  const gaps = p.timeDeltas.slice(1, p.samples.length + 1);
  const sorted = Float64Array.from(gaps).sort();
  const cap = 4 * (sorted[sorted.length >> 1] ?? 0);
  const self = new Map<string, { us: number; samples: number }>();
  let total = 0;
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const us = Math.min(gaps[i] ?? 0, cap);
    const frame = byId.get(p.samples[i] as number) ?? '(unknown)';
    const t = self.get(frame) ?? { us: 0, samples: 0 };
    t.us += us;
    t.samples++;
    self.set(frame, t);
    total += us;
  }
  return [...self]
    .map(([frame, t]) => ({ frame, selfMs: t.us / 1000, share: total > 0 ? t.us / total : 0, samples: t.samples }))
    .sort((a, b) => b.selfMs - a.selfMs);
}

/** The first `n` frames as a table, with the length of the profile (or of the window). */
export function formatTop(p: CpuProfile, n: number, window?: ProfileWindow): string {
  const all = topFrames(p, window);
  const rows = all.slice(0, n);
  const from = Math.max(p.startTime, window?.fromUs ?? p.startTime);
  const to = Math.min(p.endTime, window?.toUs ?? p.endTime);
  const samples = all.reduce((k, r) => k + r.samples, 0);
  const lines = [`profile${window ? ' window' : ''}: ${((to - from) / 1e6).toFixed(1)} s, ${samples} samples`];
  lines.push('  self ms  self %  samples  frame');
  for (const r of rows) {
    const cells = [
      r.selfMs.toFixed(0).padStart(9),
      `${(r.share * 100).toFixed(1).padStart(5)}%`,
      String(r.samples).padStart(7),
    ];
    lines.push(`${cells.join('  ')}  ${r.frame}`);
  }
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    options: { top: { type: 'string', default: '15' } },
    allowPositionals: true,
    args: process.argv.slice(2).filter((a) => a !== '--'),
  });
  const n = Number(values.top);
  if (positionals.length === 0 || !Number.isSafeInteger(n) || n <= 0) {
    process.stderr.write('usage: profile-top FILE.cpuprofile... [--top N]\n');
    process.exit(2);
  }
  for (const file of positionals) {
    process.stdout.write(`${file}\n${formatTop(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, n)}\n`);
  }
}
