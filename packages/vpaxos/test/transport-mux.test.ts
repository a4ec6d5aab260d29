import { decodeSnapshotAck, encodeSnapshotAck, encodeSnapshotChunk } from '@cohort/core';
import { MemoryHub } from '@cohort/core/testing';
import { describe, expect, it } from 'vitest';
import { VP_MASTER_PROTOCOL, VP_PROTOCOL, encodeMasterMessage, encodeMessage } from '../src/codec.js';
import { VP_SNAPSHOT_PROTOCOL } from '../src/host/snapshot-stream.js';
import { VpTransportMux } from '../src/host/transport-mux.js';

async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('VpTransportMux', () => {
  it('hands each frame to the replica of its group, master-bound messages to the master, and drops the rest', async () => {
    const hub = new MemoryHub();
    const mux = new VpTransportMux(hub.transport('a'));
    const peer = hub.transport('b');
    const got: string[] = [];
    mux.forGroup('p1').handle(VP_PROTOCOL, (from) => got.push(`p1 vp from ${from}`));
    mux.forGroup('p2').handle(VP_MASTER_PROTOCOL, () => got.push('p2 master frame'));
    mux.onMasterMessage((from, group, msg) => got.push(`master ${msg.type} ${group} from ${from}`));
    const p2a = { type: 'p2a' as const, ballot: 1, entries: [], commit: 0, round: 1 };
    await peer.send('a', VP_PROTOCOL, encodeMessage('p1', p2a));
    await peer.send('a', VP_PROTOCOL, encodeMessage('p9', p2a));
    await peer.send(
      'a',
      VP_MASTER_PROTOCOL,
      encodeMasterMessage('p2', { type: 'alive', incarnation: 1, activeBallot: 0 }),
    );
    await peer.send(
      'a',
      VP_MASTER_PROTOCOL,
      encodeMasterMessage('p2', { type: 'activated', ballot: 1, primary: 'a', acceptors: ['a'] }),
    );
    await peer.send('a', VP_PROTOCOL, new Uint8Array([9, 9, 9]));
    await until(() => got.length === 3 && mux.dropped === 2);
    expect(got.sort()).toEqual(['master alive p2 from b', 'p1 vp from b', 'p2 master frame']);
  });

  it('delivers a replica frame addressed to its own node without the network', async () => {
    const hub = new MemoryHub();
    const mux = new VpTransportMux(hub.transport('a'));
    const got: string[] = [];
    mux.onMasterMessage((from, _group, msg) => got.push(`${msg.type} from ${from}`));
    const t = mux.forGroup('p1');
    await t.send('a', VP_MASTER_PROTOCOL, encodeMasterMessage('p1', { type: 'complete', ballot: 3 }));
    await until(() => got.length === 1);
    expect(got).toEqual(['complete from a']);
  });

  it("routes a snapshot chunk request to its group's replica, and refuses one for a group not served here", async () => {
    const hub = new MemoryHub();
    const mux = new VpTransportMux(hub.transport('a'));
    const peer = hub.transport('b');
    mux.forGroup('p1').handleRequest(VP_SNAPSHOT_PROTOCOL, async () => encodeSnapshotAck({ status: 'installed' }));
    const chunk = (group: string): Uint8Array =>
      encodeSnapshotChunk({
        group,
        leader: 'b',
        term: 1,
        index: 5,
        seq: 0,
        data: new Uint8Array(0),
        last: true,
        meta: {
          index: 5,
          term: 0,
          confState: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
        },
      });
    expect(decodeSnapshotAck(await peer.request('a', VP_SNAPSHOT_PROTOCOL, chunk('p1')))).toEqual({
      status: 'installed',
    });
    expect(decodeSnapshotAck(await peer.request('a', VP_SNAPSHOT_PROTOCOL, chunk('p9')))).toMatchObject({
      status: 'refused',
      reason: 'group p9 is not served here',
    });
  });
});
