import { join } from 'node:path';
import type { Logger } from '@cohort/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SqlitePartitionKv } from '../src/sqlite-kv.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { threadReadBytes } from '../src/sqlite-prefetch-protocol.js';
import { ColdShare, ReadAhead, type ReadAheadStats } from '../src/sqlite-prefetch.js';
import { tempDir } from './harness.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Polls `stats()` until `done` holds, within a deadline. */
async function until(
  stats: () => ReadAheadStats,
  done: (s: ReadAheadStats) => boolean,
  ms = 5000,
): Promise<ReadAheadStats> {
  const end = Date.now() + ms;
  for (;;) {
    const s = stats();
    if (done(s)) return s;
    if (Date.now() > end) throw new Error(`read ahead did not get there in ${ms} ms: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const log: Logger & { warnings: string[] } = {
    warnings,
    debug: () => {},
    info: () => {},
    warn: (msg: string) => warnings.push(msg),
    error: () => {},
    child: () => log,
  };
  return log;
}

describe('read ahead of the KV rows the event loop is about to read', () => {
  let dir: string;
  let cleanup: () => void;
  let store: SqliteNodeStore | undefined;
  let ahead: ReadAhead | undefined;

  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
  });
  afterEach(() => {
    ahead?.close();
    store?.close();
    cleanup();
  });

  /** A store with `n` keys k0..k(n-1) of partition `p` committed. */
  async function storeWith(n: number, readAhead: ConstructorParameters<typeof ReadAhead>[1] | 'on' | 'off' | 'auto') {
    const s = SqliteNodeStore.open(join(dir, 'node.db'), { writer: 'thread', readAhead });
    store = s;
    const kv = s.kv('p') as SqlitePartitionKv;
    s.transaction(
      () => {
        for (let i = 0; i < n; i++) kv.put(enc(`k${i}`), enc(`v${i}`), { revision: i + 1 });
      },
      { durable: false },
    );
    await s.settled();
    return { s, kv };
  }

  it('reads the keys asked on its thread, keys that are views of a larger buffer included, and changes nothing', async () => {
    const { s, kv } = await storeWith(50, 'on');
    // Keys as an entry's decoder hands them out: views into one buffer, with bytes around them.
    const pool = Buffer.from('xxk7yyk42zzk99ww', 'latin1');
    const keys = [pool.subarray(2, 4), pool.subarray(6, 9), pool.subarray(11, 14), enc('k0')];
    let called = 0;
    kv.prefetch(() => {
      called++;
      return keys;
    });
    expect(called).toBe(1);
    const ra = s.readAhead as ReadAhead;
    // k7, k42 and k0 exist; k99 does not: had the thread read the wrong bytes, it would find other counts.
    const st = await until(
      () => ra.stats(),
      (x) => x.read === 4,
    );
    expect(st).toMatchObject({ asked: 4, read: 4, found: 3, dropped: 0 });
    expect(new TextDecoder().decode(kv.get(enc('k42'))?.value)).toBe('v42');
    expect(kv.count()).toBe(50);
  });

  it('asks nothing of a store in off mode (which still counts slow reads), nor of one whose writes run on the caller thread', async () => {
    const { s, kv } = await storeWith(3, { mode: 'off', coldMs: 0, ioCheck: false });
    // Its puts read their keys' rows first: counted, and nothing turned on.
    expect(s.readAhead?.stats()).toMatchObject({ coldHere: 3, on: false });
    let called = 0;
    kv.prefetch(() => {
      called++;
      return [enc('k1')];
    });
    expect(called).toBe(0);
    s.close();
    const inline = SqliteNodeStore.open(join(dir, 'inline.db'));
    expect(inline.readAhead?.on()).toBe(false);
    inline.close();
  });

  it('in auto mode, turns on after an event-loop read that went to the disk, and off again once reads stop doing so', async () => {
    let now = 0;
    // coldMs 0 without the I/O check: every read from the file counts as one that went to the disk.
    const { s, kv } = await storeWith(3, {
      mode: 'auto',
      coldMs: 0,
      ioCheck: false,
      burstReads: 2,
      coldShareWindow: 1,
      armMs: 100,
      now: () => now,
    });
    const ra = s.readAhead as ReadAhead;
    // The puts read their keys' rows first (each new): a burst that armed it, until 100.
    expect(ra.stats().coldHere).toBe(3);
    now = 1000;
    let called = 0;
    const ask = (): void =>
      kv.prefetch(() => {
        called++;
        return [enc('k1')];
      });
    ask();
    expect(ra.on()).toBe(false);
    expect(called).toBe(0);
    // A read of the file on the event loop (k2 is neither pending nor read before): one is no burst.
    expect(kv.get(enc('k2'))).toBeDefined();
    expect(ra.stats().coldHere).toBe(4);
    expect(ra.on()).toBe(false);
    expect(kv.get(enc('k0'))).toBeDefined();
    expect(ra.stats().coldHere).toBe(5);
    expect(ra.on()).toBe(true);
    ask();
    expect(called).toBe(1);
    // The thread's own slow reads keep it on past the first arming.
    now = 1050;
    await until(
      () => ra.stats(),
      (x) => x.read === 1,
    );
    expect(ra.stats().coldThere).toBe(1);
    now = 1120;
    expect(ra.on()).toBe(true);
    now = 1151;
    expect(ra.on()).toBe(false);
    ask();
    expect(called).toBe(1);
  });

  it('in auto mode, does not count a slow read of a page in memory (on Linux: the thread read nothing from storage)', async () => {
    if (threadReadBytes() === undefined) {
      console.warn('SKIP: /proc/thread-self/io is missing here (not Linux): every slow read counts');
      return;
    }
    // coldMs 0: every read is slow; the rows were just written, so their pages are in memory.
    const { s, kv } = await storeWith(20, { mode: 'auto', coldMs: 0 });
    const ra = s.readAhead as ReadAhead;
    for (let i = 0; i < 20; i++) expect(kv.get(enc(`k${i}`))).toBeDefined();
    expect(ra.stats()).toMatchObject({ coldHere: 0, on: false });
    // The same reads counted without the check.
    s.close();
    store = undefined;
    const again = SqliteNodeStore.open(join(dir, 'node.db'), {
      writer: 'thread',
      readAhead: { mode: 'auto', coldMs: 0, ioCheck: false, burstReads: 1 },
    });
    store = again;
    expect(again.kv('p').get(enc('k1'))).toBeDefined();
    expect(again.readAhead?.stats()).toMatchObject({ coldHere: 1, on: true });
  });

  it("in auto mode, stays on only while enough of its thread's reads go to the disk", async () => {
    for (const threadCold of [true, false]) {
      let now = 0;
      // coldMs 0: every read counts as cold; a billion ms: none does.
      const { s, kv } = await storeWith(20, {
        mode: 'auto',
        coldMs: threadCold ? 0 : 1e9,
        ioCheck: false,
        burstReads: 1,
        coldShareWindow: 10,
        minColdShare: 0.5,
        armMs: 100,
        now: () => now,
      });
      const ra = s.readAhead as ReadAhead;
      now = 1000;
      ra.readTook(2e9); // a read on the event loop that held it: on until 1100
      expect(ra.on()).toBe(true);
      kv.prefetch(() => Array.from({ length: 10 }, (_, i) => enc(`k${i}`)));
      now = 1050;
      await until(
        () => ra.stats(),
        (x) => x.read === 10,
      );
      expect(ra.stats().coldThere).toBe(threadCold ? 10 : 0);
      // Ten cold reads of ten kept it on until 1150; none of ten did not.
      now = 1120;
      expect(ra.on(), `thread's reads cold: ${threadCold}`).toBe(threadCold);
      s.close();
      store = undefined;
      cleanup();
      ({ dir, cleanup } = tempDir());
    }
  });

  it('reckons the share of cold reads over a whole window of keys, or of time when reads are few', () => {
    // A burst of cold reads is no cold share when the rest of its window is warm.
    const share = new ColdShare(100, 50, 0.2);
    expect(share.add(0, 10, 10)).toBe(false);
    expect(share.add(1, 89, 0)).toBe(false);
    expect(share.add(2, 1, 0)).toBe(false); // the window ends: 10 of 100
    // The next window starts empty; 20 of 100 is enough.
    expect(share.add(3, 80, 0)).toBe(false);
    expect(share.add(4, 20, 20)).toBe(true);
    // Few reads: the window ends with its time, here 5 of 10 cold.
    expect(share.add(10, 5, 5)).toBe(false);
    expect(share.add(59, 5, 0)).toBe(false);
    expect(share.add(60, 0, 0)).toBe(true);
    expect(share.add(200, 3, 0)).toBe(false);
    expect(share.add(250, 1, 0)).toBe(false);
  });

  it('drops the keys asked past its bound of keys in flight, rather than queue them', async () => {
    const { s, kv } = await storeWith(10, { mode: 'on', maxKeysInFlight: 3 });
    const ra = s.readAhead as ReadAhead;
    kv.prefetch(() => ['k1', 'k2', 'k3', 'k4', 'k5'].map(enc));
    const st = await until(
      () => ra.stats(),
      (x) => x.read === 3,
    );
    expect(st).toMatchObject({ asked: 5, read: 3, found: 3, dropped: 2 });
    // Room again once the thread caught up.
    kv.prefetch(() => [enc('k6')]);
    await until(
      () => ra.stats(),
      (x) => x.read === 4,
    );
  });

  it('turns itself off for good, with a warning, when its thread cannot read the database', async () => {
    const log = recordingLogger();
    ahead = new ReadAhead(join(dir, 'missing.db'), { mode: 'on', logger: log });
    ahead.want(1, [enc('k')]);
    await until(
      () => (ahead as ReadAhead).stats(),
      (x) => !x.on,
    );
    expect(log.warnings).toEqual([expect.stringContaining('read ahead is off')]);
    ahead.want(1, [enc('k')]);
    expect(ahead.stats().asked).toBe(1);
  });

  it('stops with its store', async () => {
    const { s, kv } = await storeWith(2, 'on');
    const ra = s.readAhead as ReadAhead;
    kv.prefetch(() => [enc('k1')]);
    await until(
      () => ra.stats(),
      (x) => x.read === 1,
    );
    s.close();
    store = undefined;
    expect(ra.on()).toBe(false);
  });

  it('refuses an unknown mode', () => {
    expect(() =>
      SqliteNodeStore.open(join(dir, 'bad.db'), { writer: 'thread', readAhead: 'sometimes' as 'on' }),
    ).toThrow(/readAhead must be one of auto, on, off; got sometimes/);
  });
});
