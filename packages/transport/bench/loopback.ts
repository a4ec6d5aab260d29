// Loopback figures for two transports in one process: request round trips
// (multiplexed on a long-lived stream), ping-pong over long-lived frame
// streams, requests/s with many in flight, and one-way frame throughput. Run with `pnpm run bench` (builds first).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Protocols } from '@cohort/core';
import { createLibp2pTransport } from '../dist/index.js';

const dirs = [await mkdtemp(join(tmpdir(), 'cohort-bench-')), await mkdtemp(join(tmpdir(), 'cohort-bench-'))];
const a = createLibp2pTransport({ self: 'a', listen: '127.0.0.1:0', dataDir: dirs[0] });
const b = createLibp2pTransport({ self: 'b', listen: '127.0.0.1:0', dataDir: dirs[1] });
await a.start();
await b.start();
a.addPeer('b', b.listenAddresses()[0]);
b.addPeer('a', a.listenAddresses()[0]);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
function report(name: string, samples: number[]): void {
  const s = [...samples].sort((x, y) => x - y);
  const mean = s.reduce((x, y) => x + y, 0) / s.length;
  console.log(
    `${name}: n=${s.length} mean=${mean.toFixed(3)} ms p50=${percentile(s, 50).toFixed(3)} ms p99=${percentile(s, 99).toFixed(3)} ms`,
  );
}

// 1. request/response, multiplexed on one long-lived stream per peer and protocol.
b.handleRequest(Protocols.kv, async (_from, frame) => frame);
const payload = new Uint8Array(64);
for (let i = 0; i < 200; i++) await a.request('b', Protocols.kv, payload); // warm up
const rtt: number[] = [];
for (let i = 0; i < 2000; i++) {
  const t0 = performance.now();
  await a.request('b', Protocols.kv, payload);
  rtt.push(performance.now() - t0);
}
report('request round trip (64 B)', rtt);
{
  const inFlight = 64;
  const total = 20_000;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < total) await a.request('b', Protocols.kv, payload);
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `requests with ${inFlight} in flight: ${total} in ${secs.toFixed(2)} s = ${Math.round(total / secs)} req/s`,
  );
}

// 2. ping-pong over the long-lived frame streams.
let pong: (() => void) | undefined;
b.handle(Protocols.raft, (from, frame) => void b.send(from, Protocols.raft, frame));
a.handle(Protocols.raft, () => pong?.());
const pingOnce = (): Promise<void> =>
  new Promise<void>((resolve) => {
    pong = resolve;
    void a.send('b', Protocols.raft, payload);
  });
for (let i = 0; i < 200; i++) await pingOnce();
const ping: number[] = [];
for (let i = 0; i < 2000; i++) {
  const t0 = performance.now();
  await pingOnce();
  ping.push(performance.now() - t0);
}
report('frame ping-pong (64 B, long-lived streams)', ping);

// 3. one-way throughput: offer frames in windows below the queue bound.
for (const size of [100, 1024, 16 * 1024]) {
  let received = 0;
  let done: (() => void) | undefined;
  const total = size >= 16 * 1024 ? 5_000 : 50_000;
  b.handle(Protocols.swim, () => {
    received++;
    if (received === total) done?.();
  });
  const frame = new Uint8Array(size);
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += 512) {
    const n = Math.min(512, total - sent);
    await Promise.all(Array.from({ length: n }, () => a.send('b', Protocols.swim, frame)));
  }
  await all;
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `one-way frames of ${size} B: ${total} in ${secs.toFixed(2)} s = ${Math.round(total / secs)} frames/s, ` +
      `${((total * size) / secs / 1024 / 1024).toFixed(1)} MiB/s, dropped ${a.stats().framesDropped}`,
  );
}

await a.stop();
await b.stop();
await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
