import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotHistogram } from '../src/hot-metrics.js';

const BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.1, 1];

/** Values around and on the bounds, and above every one. */
const seconds = fc.oneof(
  fc.constantFrom(...BUCKETS, 0, 2, 1e-9),
  fc.double({ min: 0, max: 3, noNaN: true, noDefaultInfinity: true }),
);

const observation = fc.record({
  frontend: fc.constantFrom('resp', 'http'),
  kind: fc.constantFrom('read', 'write'),
  value: seconds,
});

/** Both kinds on one registry each, fed the same observations. */
function pair() {
  const ours = new Registry();
  const theirs = new Registry();
  const hot = {
    hist: new HotHistogram('t_seconds', 'latency', ['frontend', 'kind'], BUCKETS, ours),
    count: new HotCounter('t_total', 'requests', ['frontend', 'command', 'outcome'], ours),
  };
  const prom = {
    hist: new Histogram({
      name: 't_seconds',
      help: 'latency',
      labelNames: ['frontend', 'kind'],
      buckets: BUCKETS,
      registers: [theirs],
    }),
    count: new Counter({
      name: 't_total',
      help: 'requests',
      labelNames: ['frontend', 'command', 'outcome'],
      registers: [theirs],
    }),
  };
  return { ours, theirs, hot, prom };
}

/** prom-client's answers name a value's exemplar even where there is none (null); ours do not name one at all. */
function withoutExemplars<T extends { values: object[] }>(metrics: T[]): T[] {
  return metrics.map((m) => ({
    ...m,
    values: m.values.map((v) =>
      Object.fromEntries(Object.entries(v).filter(([k, x]) => k !== 'exemplar' || x != null)),
    ),
  }));
}

describe('hot metrics', () => {
  it('render and answer get() as prom-client does for the same observations', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (obs) => {
        const { ours, theirs, hot, prom } = pair();
        for (const o of obs) {
          hot.hist.cell({ frontend: o.frontend, kind: o.kind }).observe(o.value);
          prom.hist.observe({ frontend: o.frontend, kind: o.kind }, o.value);
          const outcome = o.value > 0.01 ? 'error' : 'ok';
          hot.count.cell({ command: o.kind, outcome, frontend: o.frontend }).inc();
          prom.count.inc({ frontend: o.frontend, command: o.kind, outcome });
        }
        expect(await ours.metrics()).toBe(await theirs.metrics());
        expect(await ours.getMetricsAsJSON()).toEqual(withoutExemplars(await theirs.getMetricsAsJSON()));
      }),
    );
  });

  it('hands out one cell a label set, whatever the order its labels are written in', () => {
    const { hot } = pair();
    const a = hot.count.cell({ frontend: 'http', command: 'get', outcome: 'ok' });
    expect(hot.count.cell({ outcome: 'ok', command: 'get', frontend: 'http' })).toBe(a);
    expect(hot.count.cell({ outcome: 'error', command: 'get', frontend: 'http' })).not.toBe(a);
  });

  it('lists only label sets counted, and reset() empties them while held cells go on counting', async () => {
    const { ours, hot } = pair();
    const cell = hot.hist.cell({ frontend: 'http', kind: 'read' });
    hot.hist.cell({ frontend: 'resp', kind: 'read' });
    expect(await ours.getSingleMetricAsString('t_seconds')).not.toContain('_count');
    cell.observe(0.003);
    const text = await ours.getSingleMetricAsString('t_seconds');
    expect(text).toContain('t_seconds_bucket{le="0.002",frontend="http",kind="read"} 0');
    expect(text).toContain('t_seconds_bucket{le="0.005",frontend="http",kind="read"} 1');
    expect(text).toContain('t_seconds_count{frontend="http",kind="read"} 1');
    expect(text).not.toContain('frontend="resp"');
    ours.resetMetrics();
    expect(await ours.getSingleMetricAsString('t_seconds')).not.toContain('_count');
    cell.observe(2);
    expect(await ours.getSingleMetricAsString('t_seconds')).toContain(
      't_seconds_bucket{le="+Inf",frontend="http",kind="read"} 1',
    );
  });

  it('refuses unknown or missing labels, bad bounds and values that are not finite', () => {
    const { hot } = pair();
    expect(() => hot.count.cell({ frontend: 'http', command: 'get' })).toThrow(/needs a value for label outcome/);
    expect(() => hot.hist.cell({ frontend: 'http', kind: 'read', extra: 'x' })).toThrow(/has no label extra/);
    expect(() => hot.hist.cell({ frontend: 'http', kind: 'read' }).observe(Number.NaN)).toThrow(/finite/);
    expect(() => new HotHistogram('b', 'b', [], [1, 1], new Registry())).toThrow(/distinct finite/);
    expect(() => new HotHistogram('c', 'c', [], [], new Registry())).toThrow(/distinct finite/);
  });
});
