import { existsSync } from 'node:fs';
import { CorruptStateError } from '@cohort/core';
import type { SnapshotReader } from '@cohort/raft';
import { type SqliteNodeStore, openImageView } from '@cohort/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvSnapshotReader } from '../src/snapshot-stream.js';
import { WorkerSnapshotReader } from '../src/snapshot-thread.js';
import { CONF, type MachineHarness, entry, setCmd, sqliteThreadMachine } from './harness.js';

async function readAll(reader: SnapshotReader, maxBytes: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let c = await reader.next(maxBytes); c; c = await reader.next(maxBytes)) out.push(c);
  return out;
}

async function gone(file: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} still exists 5 s after the reader closed`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a snapshot read on a worker thread', () => {
  let h: MachineHarness;
  beforeEach(() => {
    h = sqliteThreadMachine();
    const batch = [];
    for (let i = 1; i <= 2000; i++)
      batch.push(entry(i, setCmd(`key-${String(i).padStart(5, '0')}`, 'v'.repeat(i % 97))));
    h.sm.applyBatch(batch, CONF);
  });
  afterEach(() => h.cleanup());

  it("is the node's reader, and streams the same chunks as a reader on the event loop; closing it deletes the copy", async () => {
    const reader = await h.sm.openSnapshot();
    expect(reader).toBeInstanceOf(WorkerSnapshotReader);
    expect(reader.meta.index).toBe(2000);
    const copy = await h.store.kv('p1').openDetachedImage!();
    const here = new KvSnapshotReader(openImageView(copy));
    const expected = await readAll(here, 4096);
    here.close();
    copy.close();
    const chunks = await readAll(reader, 4096);
    expect(chunks.length).toBeGreaterThan(10);
    expect(chunks.map((c) => Buffer.from(c).toString('hex'))).toEqual(
      expected.map((c) => Buffer.from(c).toString('hex')),
    );
    // Past the end it keeps answering the end.
    expect(await reader.next(4096)).toBeUndefined();
    const image = (reader as unknown as { copy: { image: string } }).copy.image;
    expect(existsSync(image)).toBe(true);
    reader.close();
    await gone(image);
  });

  it('reports a row failing its checksum as corrupt state of its partition', async () => {
    (h.store as SqliteNodeStore).flush();
    (h.store as SqliteNodeStore).database
      .prepare("UPDATE kv SET value = x'00' WHERE key = ?")
      .run(Buffer.from('key-01500'));
    const reader = await h.sm.openSnapshot();
    const err = await readAll(reader, 4096).then(
      () => undefined,
      (e: unknown) => e,
    );
    reader.close();
    expect(err).toBeInstanceOf(CorruptStateError);
    expect((err as CorruptStateError).partition).toBe('p1');
    expect((err as Error).message).toMatch(/partition p1: KV row for key 6b65792d3031353030 is corrupt/);
  });

  it('fails every read once closed, the one in flight included', async () => {
    const reader = await h.sm.openSnapshot();
    expect(await reader.next(4096)).toBeInstanceOf(Uint8Array);
    const pending = reader.next(4096);
    reader.close();
    await expect(pending).rejects.toThrow(/snapshot reader closed/);
    await expect(reader.next(4096)).rejects.toThrow(/snapshot reader closed/);
  });
});
