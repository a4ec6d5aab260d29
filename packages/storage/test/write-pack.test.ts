import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Job, Op } from '../src/sqlite-ops.js';
import { packJobBytes } from '../src/sqlite-write-queue.js';

/** A shared buffer the byte arguments view, as Node's pool or a socket's read buffer is. */
const POOL = new Uint8Array(70_000).map((_, i) => (i * 31) % 251);

/** A byte argument: a view of the pool, or a large array of its own (a snapshot chunk). */
const bytes = fc.oneof(
  fc
    .tuple(fc.nat(POOL.length - 20_000), fc.nat(300))
    .map(([at, n]) => (Buffer.from(POOL.buffer) as Uint8Array).subarray(at, at + n)),
  fc.nat(100).map((n) => new Uint8Array(16 * 1024 + 1 + n).fill(n)),
);
const arg = fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.bigInt(), bytes);
const job = fc
  .array(fc.array(arg, { maxLength: 8 }), { maxLength: 6 })
  .map((ops): Job => ({ seq: 1, durable: true, ops: ops.map((args) => ['put', ...args] as Op) }));

/** Each argument as a comparable value: byte arrays by their bytes. */
const plain = (jobs: Job[]): unknown[] =>
  jobs.map((j) => j.ops.map((op) => op.map((a) => (a instanceof Uint8Array ? Buffer.from(a).toString('base64') : a))));

describe('packJobBytes', () => {
  it('copies the small byte arguments into one buffer and leaves every argument as it was', () => {
    fc.assert(
      fc.property(fc.array(job, { maxLength: 5 }), (jobs) => {
        const before = plain(jobs);
        const large = jobs.flatMap((j) =>
          j.ops.flatMap((op) => op.filter((a) => a instanceof Uint8Array && a.byteLength > 16 * 1024)),
        );
        const small = jobs.flatMap((j) =>
          j.ops.flatMap((op) => op.filter((a) => a instanceof Uint8Array && a.byteLength <= 16 * 1024)),
        );
        const packed = packJobBytes(jobs);
        expect(plain(jobs)).toEqual(before);
        const total = small.reduce((n: number, a) => n + (a as Uint8Array).byteLength, 0);
        // Nothing to pack (no byte arguments, or only empty ones): the arguments stay as they were.
        if (total === 0) expect(packed).toBeUndefined();
        else expect(packed?.byteLength).toBe(total);
        for (const j of jobs) {
          for (const op of j.ops) {
            for (const a of op) {
              if (!(a instanceof Uint8Array)) continue;
              if (a.byteLength > 16 * 1024) expect(large).toContain(a);
              else if (packed === undefined) expect(small).toContain(a);
              else expect(a.buffer).toBe(packed);
            }
          }
        }
      }),
    );
  });

  it('sends the writer only the bytes its jobs hold, not the buffers they view', () => {
    const { port1, port2 } = new MessageChannel();
    try {
      const pooled = Buffer.allocUnsafe(117);
      pooled.fill(3);
      const jobs: Job[] = [{ seq: 1, durable: true, ops: [['insEntry', 1, 1, 1, 0, pooled, 99]] }];
      const packed = packJobBytes(jobs);
      port1.postMessage({ jobs }, packed === undefined ? [] : [packed]);
      const got = receiveMessageOnPort(port2)?.message as { jobs: Job[] };
      const data = got.jobs[0]?.ops[0]?.[5] as Uint8Array;
      expect(Array.from(data)).toEqual(Array.from(pooled));
      // Unpacked, the view would have carried Node's whole pool (64 KiB in Node 24) across.
      expect(data.buffer.byteLength).toBe(117);
      // Handed over, not copied: the sender's buffer is detached.
      expect(packed?.byteLength).toBe(0);
    } finally {
      port1.close();
      port2.close();
    }
  });
});
