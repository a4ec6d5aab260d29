// The writer thread of a SqliteNodeStore in thread mode: it owns every write
// to the node's database on its own connection. Jobs arrive in order on the
// port; everything queued while the previous commit (and its fsync) ran is
// committed together. Progress is posted back and mirrored in a shared
// counter, so the main thread can also wait for it synchronously.
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { type Job, JobRunner } from './sqlite-ops.js';
import {
  CTRL_CLOSED,
  CTRL_COMMITTED,
  CTRL_FAILED,
  type ToMain,
  type ToWriter,
  type WriterData,
} from './sqlite-writer-protocol.js';

const data = workerData as WriterData;
const port: MessagePort = data.port;
const ctrl = new BigInt64Array(data.ctrl);
let runner: JobRunner | undefined;
let db: Database.Database | undefined;
let failed: string | undefined;

function post(msg: ToMain): void {
  port.postMessage(msg);
}

function fail(message: string): void {
  failed = message;
  post({ type: 'failed', message });
  Atomics.store(ctrl, CTRL_FAILED, 1n);
  Atomics.notify(ctrl, CTRL_COMMITTED);
}

try {
  db = new Database(data.file, { fileMustExist: true });
  db.pragma('synchronous = FULL');
  runner = new JobRunner(db, data.commitGate === undefined ? {} : { commitGate: data.commitGate });
} catch (err) {
  fail(`cannot open the database for writing: ${(err as Error).message}`);
}

function close(): void {
  try {
    db?.close();
  } finally {
    Atomics.store(ctrl, CTRL_CLOSED, 1n);
    Atomics.notify(ctrl, CTRL_COMMITTED);
    port.close();
  }
}

function handle(first: ToWriter): void {
  const jobs: Job[] = [];
  let closing = false;
  for (let m: ToWriter | undefined = first; m !== undefined; ) {
    if (m.type === 'close') closing = true;
    else jobs.push(...m.jobs);
    const next = receiveMessageOnPort(port);
    m = next === undefined ? undefined : (next.message as ToWriter);
  }
  if (jobs.length > 0) {
    if (failed !== undefined) post({ type: 'failed', message: failed });
    else {
      try {
        const started = performance.now();
        const commits = (runner as JobRunner).run(jobs);
        const ms = performance.now() - started;
        const upTo = (jobs[jobs.length - 1] as Job).seq;
        post({ type: 'committed', upTo, jobs: jobs.length, commits, ms });
        Atomics.store(ctrl, CTRL_COMMITTED, BigInt(upTo));
        Atomics.notify(ctrl, CTRL_COMMITTED);
      } catch (err) {
        fail((err as Error).message);
      }
    }
  }
  if (closing) close();
}

port.on('message', handle);
