/**
 * Three Raft nodes in one process, wired by an in-memory "network": the
 * caller's loop from the README, runnable with `node examples/three-nodes.ts`
 * (after `pnpm run build`).
 */
import { pathToFileURL } from 'node:url';
import { type Message, SeededRandom } from '@cohort/core';
import { MemoryStorage, RawNode, decodeConfChange } from '@cohort/raft';

interface Member {
  node: RawNode;
  storage: MemoryStorage;
  kv: Map<string, string>;
}

/** Elects a leader among three nodes, writes two keys and returns each node's resulting map. */
export function runThreeNodes(): Record<string, Record<string, string>> {
  const ids = ['n1', 'n2', 'n3'];
  const members = new Map<string, Member>();
  for (const [i, id] of ids.entries()) {
    const storage = new MemoryStorage();
    const node = RawNode.bootstrap(
      { id, electionTick: 10, heartbeatTick: 1, random: new SeededRandom(i + 1) },
      storage,
      ids,
    );
    members.set(id, { node, storage, kv: new Map() });
  }
  let inbox: Message[] = [];

  // The caller's loop: persist, send, apply, advance.
  const drain = (): void => {
    for (let moved = true; moved; ) {
      moved = false;
      for (const m of members.values()) {
        if (!m.node.hasReady()) continue;
        moved = true;
        const rd = m.node.ready();
        if (rd.snapshot) m.storage.applySnapshot(rd.snapshot);
        m.storage.append(rd.entries);
        if (rd.hardState) m.storage.setHardState(rd.hardState);
        inbox.push(...rd.messages);
        for (const e of rd.committedEntries) {
          if (e.type === 'confChange') m.node.applyConfChange(decodeConfChange(e.data));
          else if (e.data.length > 0) {
            const [k, v] = new TextDecoder().decode(e.data).split('=');
            m.kv.set(k ?? '', v ?? '');
          }
        }
        m.node.advance();
      }
      const batch = inbox;
      inbox = [];
      for (const msg of batch) {
        moved = true;
        members.get(msg.to)?.node.step(msg);
      }
    }
  };

  drain();
  // Tick until someone wins an election.
  let leader: Member | undefined;
  for (let t = 0; t < 100 && !leader; t++) {
    for (const m of members.values()) m.node.tick();
    drain();
    leader = [...members.values()].find((m) => m.node.status().role === 'leader');
  }
  if (!leader) throw new Error('no leader elected');
  leader.node.propose(new TextEncoder().encode('color=blue'));
  leader.node.propose(new TextEncoder().encode('shape=round'));
  drain();

  const out: Record<string, Record<string, string>> = {};
  for (const [id, m] of members) out[id] = Object.fromEntries(m.kv);
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(runThreeNodes(), null, 2));
}
