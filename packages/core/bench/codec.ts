// Encode/decode rates of the wire codec for typical Raft traffic: heartbeats,
// and appends of 16 entries of 128 bytes batched 8 per frame.
// Run with `pnpm run bench` (builds first).
import { type GroupMessage, type Message, decodeRaftBatch, encodeRaftBatch } from '../dist/index.js';

function message(type: Message['type'], entries: number): Message {
  return {
    type,
    from: 'n1',
    to: 'n2',
    term: 7,
    logTerm: 7,
    index: 123_456,
    entries: Array.from({ length: entries }, (_, i) => ({
      term: 7,
      index: 123_457 + i,
      type: 'normal' as const,
      data: new Uint8Array(128).fill(i),
    })),
    commit: 123_400,
    reject: false,
    rejectHint: 0,
    rejectTerm: 0,
    snapOffset: 0,
    snapDone: false,
    context: new Uint8Array(),
  };
}

function measure(name: string, batch: GroupMessage[], rounds: number): void {
  const frame = encodeRaftBatch(batch);
  for (let i = 0; i < 1000; i++) decodeRaftBatch(encodeRaftBatch(batch)); // warm up
  let t0 = performance.now();
  for (let i = 0; i < rounds; i++) encodeRaftBatch(batch);
  const enc = (performance.now() - t0) / 1000;
  t0 = performance.now();
  for (let i = 0; i < rounds; i++) decodeRaftBatch(frame);
  const dec = (performance.now() - t0) / 1000;
  const msgs = rounds * batch.length;
  console.log(
    `${name}: frame ${frame.byteLength} B; encode ${Math.round(msgs / enc)} msgs/s, decode ${Math.round(msgs / dec)} msgs/s`,
  );
}

measure(
  'heartbeats, 8 groups per frame',
  Array.from({ length: 8 }, (_, g) => ({ group: `p${g}`, message: message('heartbeat', 0) })),
  50_000,
);
measure(
  'appends of 16 x 128 B entries, 8 per frame',
  Array.from({ length: 8 }, (_, g) => ({ group: `p${g}`, message: message('app', 16) })),
  10_000,
);
