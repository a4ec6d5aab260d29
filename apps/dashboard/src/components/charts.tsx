import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { MetricsSample } from '../types.js';

interface SeriesSpec {
  label: string;
  color: string;
  pick: (s: MetricsSample) => number | undefined;
}

interface ChartSpec {
  id: string;
  title: string;
  unit: string;
  series: SeriesSpec[];
}

const CHARTS: ChartSpec[] = [
  {
    id: 'requests',
    title: 'Requests',
    unit: 'req/s',
    series: [{ label: 'requests/s', color: '#2563eb', pick: (s) => s.requestsPerSec }],
  },
  {
    id: 'latency',
    title: 'Request latency',
    unit: 'ms',
    series: [
      { label: 'p50 ms', color: '#16a34a', pick: (s) => s.p50Ms },
      { label: 'p99 ms', color: '#dc2626', pick: (s) => s.p99Ms },
    ],
  },
  {
    id: 'raft',
    title: 'Raft',
    unit: '/s',
    series: [
      { label: 'proposals/s (as leader)', color: '#7c3aed', pick: (s) => s.proposalsPerSec },
      { label: 'commits/s (applied here)', color: '#0891b2', pick: (s) => s.commitsPerSec },
    ],
  },
  {
    id: 'fsync',
    title: 'Durable writes (fsync)',
    unit: 'ms',
    series: [
      { label: 'mean fsync ms', color: '#ea580c', pick: (s) => s.fsyncMs },
      { label: 'fsyncs/s', color: '#94a3b8', pick: (s) => s.fsyncsPerSec },
    ],
  },
];

function columns(spec: ChartSpec, samples: MetricsSample[]): uPlot.AlignedData {
  return [
    samples.map((s) => s.t / 1000),
    ...spec.series.map((x) => samples.map((s) => x.pick(s) ?? null)),
  ] as uPlot.AlignedData;
}

function Chart(props: { spec: ChartSpec; samples: MetricsSample[] }) {
  const { spec, samples } = props;
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  useEffect(() => {
    const div = el.current!;
    const opts: uPlot.Options = {
      width: Math.max(280, div.clientWidth || 420),
      height: 170,
      // Series names only: the values under the cursor would add a row of dashes to every chart.
      legend: { show: true, live: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [{}, { label: spec.unit, size: 50 }],
      series: [{}, ...spec.series.map((x) => ({ label: x.label, stroke: x.color, width: 1.5, spanGaps: false }))],
    };
    plot.current = new uPlot(opts, columns(spec, []), div);
    // Follows the width of its grid cell; a change under 2 px is not worth a redraw (and cannot feed back).
    let width = opts.width;
    const resize = new ResizeObserver(() => {
      const w = Math.max(280, div.clientWidth);
      if (Math.abs(w - width) < 2) return;
      width = w;
      plot.current?.setSize({ width: w, height: 170 });
    });
    resize.observe(div);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
  }, [spec]);
  useEffect(() => {
    plot.current?.setData(columns(spec, samples));
  }, [spec, samples]);
  return (
    <figure class="chart" data-chart={spec.id} data-points={samples.length}>
      <figcaption>{spec.title}</figcaption>
      <div ref={el} />
    </figure>
  );
}

/** The four charts of this node's metrics history. */
export function Charts(props: { samples: MetricsSample[] }) {
  return (
    <div class="charts">
      {CHARTS.map((c) => (
        <Chart key={c.id} spec={c} samples={props.samples} />
      ))}
    </div>
  );
}
