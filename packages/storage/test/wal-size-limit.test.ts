import { statSync } from 'node:fs';
import { join } from 'node:path';
import { StorageError } from '@cohort/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { tempDir } from './harness.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const walBytes = (file: string): number => statSync(`${file}-wal`).size;

describe('the WAL size limit (writer thread)', () => {
  let t: ReturnType<typeof tempDir>;
  beforeEach(() => {
    t = tempDir();
  });
  afterEach(() => t.cleanup());

  /** Grows the WAL past 4 MiB under an open view, lets go of it, then writes on: the WAL's size after. */
  async function grownThenReleased(limit: number | undefined): Promise<{ grown: number; after: number }> {
    const file = join(t.dir, `limit-${limit ?? 'default'}.db`);
    const store = SqliteNodeStore.open(file, {
      writer: 'thread',
      ...(limit === undefined ? {} : { walSizeLimitBytes: limit }),
    });
    try {
      const kv = store.kv('p');
      const value = bytes('v'.repeat(1000));
      let rev = 0;
      const write = (rows: number): void =>
        store.transaction(() => {
          for (let i = 0; i < rows; i++) kv.put(bytes(`k${rev % 20_000}`), value, { revision: ++rev });
        });
      const held = kv.openView();
      for (let i = 0; i < 60; i++) write(100);
      await store.settled();
      const grown = walBytes(file);
      held.close();
      // The next commits checkpoint the whole WAL (no reader is in the way now), then start it over;
      // a few more than needed, in case a checkpoint meets a passing read.
      for (let i = 0; i < 20 && !(limit !== undefined && walBytes(file) <= limit); i++) {
        write(1);
        await store.settled();
      }
      return { grown, after: walBytes(file) };
    } finally {
      store.close();
    }
  }

  it('cuts the WAL back once a reader that held it let go', async () => {
    const limited = await grownThenReleased(256 * 1024);
    expect(limited.grown).toBeGreaterThan(4 * 1024 * 1024);
    expect(limited.after).toBeLessThanOrEqual(256 * 1024 + 64 * 1024);
    // Under the default limit (16 MiB) a WAL of 4-16 MiB keeps its size.
    const unlimited = await grownThenReleased(undefined);
    expect(unlimited.grown).toBeGreaterThan(4 * 1024 * 1024);
    expect(unlimited.after).toBeGreaterThan(4 * 1024 * 1024);
  });

  it('refuses a limit that is not a whole number of bytes', () => {
    expect(() => SqliteNodeStore.open(join(t.dir, 'bad.db'), { walSizeLimitBytes: -1 })).toThrow(StorageError);
    expect(() => SqliteNodeStore.open(join(t.dir, 'bad.db'), { walSizeLimitBytes: 1.5 })).toThrow(
      /walSizeLimitBytes must be a whole number of bytes/,
    );
  });
});
