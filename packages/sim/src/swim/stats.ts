/** Nearest-rank percentile of `xs` (p in [0, 100]); NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

/** The median (nearest-rank). */
export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}
