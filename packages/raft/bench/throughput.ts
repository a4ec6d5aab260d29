/**
 * Committed entries per wall-clock second for a 3-node group without faults:
 * in-memory network and MemoryStorage, proposals batched per round. Runs on
 * the built engine: `pnpm run build && pnpm run bench`.
 */
import { type Message, SeededRandom } from '@cohort/core';
import { MemoryStorage, RawNode } from '@cohort/raft';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const BATCH = Number(process.env.BENCH_BATCH ?? 256);
const PAYLOAD = Number(process.env.BENCH_PAYLOAD ?? 128);

interface Member {
  node: RawNode;
  storage: MemoryStorage;
  applied: number;
}

const ids = ['n1', 'n2', 'n3'];
const members = new Map<string, Member>();
for (const [i, id] of ids.entries()) {
  const storage = MemoryStorage.withVoters(ids);
  const node = new RawNode({ id, electionTick: 10, heartbeatTick: 1, random: new SeededRandom(i + 1) }, storage);
  members.set(id, { node, storage, applied: 0 });
}
let inbox: Message[] = [];

function drain(): void {
  for (let moved = true; moved; ) {
    moved = false;
    for (const m of members.values()) {
      if (!m.node.hasReady()) continue;
      moved = true;
      const rd = m.node.ready();
      m.storage.append(rd.entries);
      if (rd.hardState) m.storage.setHardState(rd.hardState);
      for (const msg of rd.messages) inbox.push(msg);
      m.applied += rd.committedEntries.length;
      m.node.advance();
    }
    const batch = inbox;
    inbox = [];
    for (const msg of batch) {
      moved = true;
      members.get(msg.to)?.node.step(msg);
    }
  }
}

const leader = members.get('n1') as Member;
leader.node.campaign();
drain();
if (leader.node.status().role !== 'leader') throw new Error('n1 did not become leader');

const payload = new Uint8Array(PAYLOAD).fill(7);
const startApplied = leader.applied;
const start = performance.now();
let rounds = 0;
let compactedTo = 0;
while (performance.now() - start < SECONDS * 1000) {
  for (let i = 0; i < BATCH; i++) leader.node.propose(payload);
  drain();
  rounds++;
  // Keep memory flat: compact every store behind what all applied.
  if (rounds % 64 === 0) {
    const upTo = Math.min(...[...members.values()].map((m) => m.node.status().applied));
    if (upTo > compactedTo) {
      for (const m of members.values()) {
        m.storage.createSnapshot(upTo, m.node.status().confState, new Uint8Array(0));
        m.storage.compact(upTo);
      }
      compactedTo = upTo;
    }
  }
}
const seconds = (performance.now() - start) / 1000;
const committed = leader.applied - startApplied;
const followersBehind = [...members.values()].map((m) => leader.applied - m.applied);
console.log(
  JSON.stringify({
    benchmark: 'raft-3-nodes-in-memory',
    batch: BATCH,
    payloadBytes: PAYLOAD,
    seconds: Number(seconds.toFixed(2)),
    committedEntries: committed,
    entriesPerSecond: Math.round(committed / seconds),
    followersBehind,
  }),
);
