import { join } from 'node:path';
import type { Logger } from '@cohort/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SqlitePartitionKv } from '../src/sqlite-kv.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { ColdTime, ReadAhead, type ReadAheadStats } from '../src/sqlite-prefetch.js';
import { threadReadBytes } from '../src/thread-io.js';
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
    // coldMs 0 without the I/O check: every read from the file counts as one that went to the disk;
    // minColdTime 0: any time spent there is enough.
    const { s, kv } = await storeWith(3, {
      mode: 'auto',
      coldMs: 0,
      ioCheck: false,
      minColdTime: 0,
      armMs: 100,
      now: () => now,
    });
    const ra = s.readAhead as ReadAhead;
    // The puts read their keys' rows first (each new): that armed it, until 100.
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
    // A read of the file on the event loop (k2 is neither pending nor read before).
    expect(kv.get(enc('k2'))).toBeDefined();
    expect(ra.stats().coldHere).toBe(4);
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

  it("in auto mode, turns on once the event loop's reads spend a share of a second on the disk, not at a few short waits", () => {
    let now = 1000;
    // The I/O check off: every read of 0.25 ms or more counts as gone to the disk.
    ahead = new ReadAhead(join(dir, 'none.db'), { mode: 'auto', ioCheck: false, armMs: 100, now: () => now });
    const ra = ahead;
    // 5% of a second: 50 ms. A read under 0.25 ms does not count at all.
    for (let i = 0; i < 100; i++) ra.readTook(0.2);
    for (let i = 0; i < 4; i++) ra.readTook(10);
    expect(ra.stats()).toMatchObject({ coldHere: 4, on: false });
    now = 1500;
    ra.readTook(10);
    expect(ra.stats()).toMatchObject({ coldHere: 5, on: true });
    // Off again after armMs; waits spread over seconds do not add up across them.
    now = 1700;
    expect(ra.on()).toBe(false);
    for (const at of [2000, 3001, 4002, 5003]) {
      now = at;
      ra.readTook(40);
      expect(ra.on(), `at ${at}`).toBe(false);
    }
    // One read that held the event loop that long is enough.
    now = 7000;
    ra.readTook(60);
    expect(ra.on()).toBe(true);
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
      readAhead: { mode: 'auto', coldMs: 0, ioCheck: false, minColdTime: 0 },
    });
    store = again;
    expect(again.kv('p').get(enc('k1'))).toBeDefined();
    expect(again.readAhead?.stats()).toMatchObject({ coldHere: 1, on: true });
  });

  it("in auto mode, stays on only while its thread's reads spend enough time on the disk", async () => {
    // coldMs 0: every read counts as cold; a billion ms: none does. minColdTime 1: all of the 50 ms
    // window (half of armMs) must go to cold reads, which ten reads of a small table do not take.
    for (const [coldMs, minColdTime, kept] of [
      [0, 0, true],
      [1e9, 0, false],
      [0, 1, false],
    ] as const) {
      let now = 0;
      const { s, kv } = await storeWith(20, {
        mode: 'auto',
        coldMs,
        ioCheck: false,
        minColdTime,
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
      expect(ra.stats().coldThere).toBe(coldMs === 0 ? 10 : 0);
      // Time the thread spent on cold reads kept it on until 1150; too little, or none, did not.
      now = 1120;
      expect(ra.on(), `coldMs ${coldMs}, minColdTime ${minColdTime}`).toBe(kept);
      s.close();
      store = undefined;
      cleanup();
      ({ dir, cleanup } = tempDir());
    }
  });

  it('reckons the time spent on the disk over windows that start with a cold read', () => {
    const cold = new ColdTime(100, 0.2); // 20 ms in a 100 ms window
    expect(cold.add(0, 0)).toBe(false); // no wait: no window starts
    expect(cold.add(10, 15)).toBe(false);
    expect(cold.add(109, 4)).toBe(false); // 19 ms, the window (10 to 110) nearly over
    expect(cold.add(110, 5)).toBe(false); // a new window: 5 ms
    expect(cold.add(150, 15)).toBe(true); // 20 ms within it
    // The next window starts empty, with the next wait.
    expect(cold.add(151, 19)).toBe(false);
    expect(cold.add(152, 1)).toBe(true);
    // One wait as long as the share is enough by itself.
    expect(cold.add(1000, 25)).toBe(true);
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

  it('refuses an unknown mode, and a share of time outside 0 to 1', () => {
    expect(() =>
      SqliteNodeStore.open(join(dir, 'bad.db'), { writer: 'thread', readAhead: 'sometimes' as 'on' }),
    ).toThrow(/readAhead must be one of auto, on, off; got sometimes/);
    expect(() => new ReadAhead(join(dir, 'none.db'), { mode: 'auto', minColdTime: 1.5 })).toThrow(
      /minColdTime must be a share from 0 to 1; got 1.5/,
    );
  });
});
