import type { Metric, Registry } from 'prom-client';

/**
 * Counters and histograms for the request path, served through prom-client's
 * registry with the same exposition as its own `Counter` and `Histogram`, but
 * counted in place.
 *
 * prom-client finds a label set's values on every `inc` and `observe`: it
 * validates the labels object, builds a string from its values and looks that
 * up (a histogram's child from `labels()` does the same each call). On the
 * leader under linearizable gets at 64 connections that was about 4% of the
 * cluster's throughput (tools/bench's README, thirty-fifth session), and a
 * few hundred bytes of garbage a request. Here a caller asks once for the
 * {@link CounterCell} or {@link HistogramCell} of a label set and keeps it;
 * counting is then a few arithmetic operations. prom-client still renders
 * `GET /metrics` (and `get()` answers as its metrics do), from the cells.
 */

/** What prom-client's registry reads of a metric: its `get()` and `getForPromString()` answers. */
interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
  /** Labels prom-client prints after `labels` (a histogram's `le` comes first). */
  sharedLabels?: Record<string, string>;
}

interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: MetricValue[];
  aggregator: 'sum';
}

/** One label set's count. */
export class CounterCell {
  value = 0;
  constructor(readonly labels: Readonly<Record<string, string>>) {}

  inc(n = 1): void {
    this.value += n;
  }
}

/** One label set's observations: per bucket (not cumulative), their sum and count. */
export class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  /** Records `value` (seconds, for the histograms here); one above every bound counts only toward `+Inf`. */
  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`histogram value must be a finite number, got ${value}`);
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]! += 1;
        break;
      }
    }
    this.sum += value;
    this.count += 1;
  }
}

/** The cells of one metric, one per label set, made on first use. */
abstract class HotMetric<C extends { labels: Readonly<Record<string, string>> }> {
  protected readonly cells = new Map<string, C>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    // The registry keeps and renders any object with prom-client's metric methods; its type lists only its own classes.
    registry.registerMetric(this as unknown as Metric);
  }

  /** The cell of `labels` (every label named, no other): made once, to be kept by the caller. */
  cell(labels: Readonly<Record<string, string>>): C {
    const names = Object.keys(labels);
    const unknown = names.find((n) => !this.labelNames.includes(n));
    if (unknown !== undefined) throw new Error(`metric ${this.name} has no label ${unknown}`);
    const ordered: Record<string, string> = {};
    for (const n of this.labelNames) {
      const v = labels[n];
      if (v === undefined) throw new Error(`metric ${this.name} needs a value for label ${n}`);
      ordered[n] = v;
    }
    const key = JSON.stringify(this.labelNames.map((n) => ordered[n]));
    let c = this.cells.get(key);
    if (c === undefined) {
      c = this.make(ordered);
      this.cells.set(key, c);
    }
    return c;
  }

  protected abstract make(labels: Record<string, string>): C;

  /** The label sets counted so far (prom-client too lists only those), in the order they were first asked for. */
  protected counted(): C[] {
    return [...this.cells.values()].filter((c) => this.used(c));
  }

  protected abstract used(c: C): boolean;

  /** Back to nothing counted (`registry.resetMetrics()`); the cells callers hold keep counting. */
  abstract reset(): void;

  /** What prom-client renders `GET /metrics` from (a histogram's `le` before its other labels, as its own). */
  abstract getForPromString(): Promise<MetricData>;

  /** As prom-client's metrics answer `get()`: every value's labels in one object. */
  async get(): Promise<MetricData> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ sharedLabels, labels, ...v }) => ({
      ...v,
      labels: { ...labels, ...sharedLabels },
    }));
    return data;
  }
}

/** A counter (`inc` only) whose label sets are {@link CounterCell}s. */
export class HotCounter extends HotMetric<CounterCell> {
  protected make(labels: Record<string, string>): CounterCell {
    return new CounterCell(labels);
  }

  protected used(c: CounterCell): boolean {
    return c.value !== 0;
  }

  reset(): void {
    for (const c of this.cells.values()) c.value = 0;
  }

  async getForPromString(): Promise<MetricData> {
    return {
      name: this.name,
      help: this.help,
      type: 'counter',
      values: this.counted().map((c) => ({ value: c.value, labels: { ...c.labels } })),
      aggregator: 'sum',
    };
  }
}

/** A histogram with fixed bucket bounds whose label sets are {@link HistogramCell}s. */
export class HotHistogram extends HotMetric<HistogramCell> {
  private readonly bounds: readonly number[];

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[],
    registry: Registry,
  ) {
    super(name, help, labelNames, registry);
    const sorted = [...buckets].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b === sorted[i - 1]))) {
      throw new Error(`histogram ${name} needs distinct finite bucket bounds, got ${buckets.join(', ')}`);
    }
    this.bounds = sorted;
  }

  protected make(labels: Record<string, string>): HistogramCell {
    return new HistogramCell(labels, this.bounds);
  }

  protected used(c: HistogramCell): boolean {
    return c.count !== 0;
  }

  reset(): void {
    for (const c of this.cells.values()) {
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
  }

  async getForPromString(): Promise<MetricData> {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.counted()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += c.counts[i]!;
        values.push({ value: acc, labels: { le }, metricName: bucket, sharedLabels: { ...c.labels } });
      });
      values.push(
        { value: c.count, labels: { le: '+Inf' }, metricName: bucket, sharedLabels: { ...c.labels } },
        { value: c.sum, labels: {}, metricName: `${this.name}_sum`, sharedLabels: { ...c.labels } },
        { value: c.count, labels: {}, metricName: `${this.name}_count`, sharedLabels: { ...c.labels } },
      );
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}
