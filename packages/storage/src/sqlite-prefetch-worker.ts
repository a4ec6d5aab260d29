// The read-ahead thread of a SqliteNodeStore: it looks up the KV rows the
// event loop is about to read (the keys of entries being appended, which
// their apply reads once committed) on a read-only connection of its own, so
// the pages they sit on are in the OS page cache when the event loop reads
// them. It changes nothing and answers nothing but counts: a read here that
// finds nothing, or finds a row written later, costs only its time.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { SCAN_PAGE_CACHE_BYTES, setPageCache } from './page-cache.js';
import type { PrefetchBatch, PrefetchData, PrefetchReply } from './sqlite-prefetch-protocol.js';
import { threadReadBytes } from './thread-io.js';

const data = workerData as PrefetchData;
const port = parentPort;

function reply(msg: PrefetchReply): void {
  port?.postMessage(msg);
}

let read: Database.Statement | undefined;
try {
  const db = new Database(data.file, { readonly: true, fileMustExist: true });
  // Its reads are for the OS's page cache: of its own it needs the b-tree's interior pages.
  setPageCache(db, SCAN_PAGE_CACHE_BYTES);
  // The value column too: a large value's overflow pages are read with it.
  read = db.prepare('SELECT value FROM kv WHERE gen_id = ? AND key = ?').pluck();
} catch (err) {
  reply({ type: 'failed', message: (err as Error).message });
}

port?.on('message', (batch: PrefetchBatch) => {
  if (read === undefined) return;
  const stmt = read;
  let at = 0;
  let cold = 0;
  let coldMs = 0;
  let found = 0;
  const io = data.ioCheck ? threadReadBytes() : undefined;
  try {
    for (let i = 0; i < batch.lens.length; i++) {
      const len = batch.lens[i] as number;
      const key = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset + at, len);
      at += len;
      const t0 = performance.now();
      if (stmt.get(batch.gens[i], key) !== undefined) found++;
      const took = performance.now() - t0;
      if (took >= data.coldMs) {
        cold++;
        coldMs += took;
      }
    }
  } catch (err) {
    read = undefined;
    reply({ type: 'failed', message: (err as Error).message });
    return;
  }
  // Slow reads with nothing read from storage were this thread waiting for a CPU.
  if (io !== undefined && cold > 0 && (threadReadBytes() ?? io + 1) <= io) {
    cold = 0;
    coldMs = 0;
  }
  reply({ type: 'done', keys: batch.lens.length, found, cold, coldMs });
});
