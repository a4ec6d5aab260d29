import { type KvClientRequest, type KvClientWrite, type KvResponse, type SlotMap, isReservedKey } from '@cohort/kv';
import type { KvApi } from './kv-api.js';
import { writeKeys } from './partitioned-kv.js';

/** How many pipelined writes one merged entry may hold, and how many bytes of keys, values and arguments. */
export interface MergeLimits {
  maxWrites: number;
  maxBytes: number;
}

/**
 * 64 writes or 256 KiB: a pipeline of `-P 16` merges whole, and a merged entry stays far below
 * the size one command may reach (`--max-command-bytes`); a write past 256 KiB goes alone.
 */
export const DEFAULT_MERGE_LIMITS: MergeLimits = { maxWrites: 64, maxBytes: 256 * 1024 };

/** The writes an EXEC may hold whose answer is the one they get alone (no keyless, internal or nested ones). */
const MERGEABLE: ReadonlySet<KvClientWrite['op']> = new Set([
  'set',
  'del',
  'incr',
  'mset',
  'append',
  'setrange',
  'getdel',
  'getex',
  'incrbyfloat',
  'rename',
  'copy',
  'expire',
  'persist',
  'collection',
]);

/** Bytes of a write's keys, values and arguments. */
function writeBytes(w: KvClientWrite): number {
  let n = 0;
  for (const k of writeKeys(w)) n += k.byteLength;
  const f = w as unknown as Record<string, unknown>;
  for (const one of [f.value, f.increment]) if (one instanceof Uint8Array) n += one.byteLength;
  for (const list of [f.values, f.args]) {
    if (Array.isArray(list)) for (const v of list) if (v instanceof Uint8Array) n += v.byteLength;
  }
  return n;
}

/** Relative deadlines this far off (about 35,000 years) or more go alone: their conversion may overflow. */
const FAR_MS = 2 ** 50;

/**
 * Whether `w`'s deadline keeps it out of an EXEC: an absolute one (EXPIREAT, SET ... PXAT, GETEX ...
 * EXAT), which an EXEC beside a relative one moves by the forwarding delay (`shifted` in the KV
 * service), while alone it stays as the client stated it; or a relative one so far off that turning it
 * into a deadline may fail, which fails the whole EXEC, while alone it fails only its own write.
 */
function deadlineAlone(w: KvClientWrite): boolean {
  let d: { kind: string; ms?: number };
  switch (w.op) {
    case 'set':
    case 'getex':
      d = w.expiry;
      break;
    case 'expire':
      d = w.deadline;
      break;
    default:
      return false;
  }
  if (d.kind === 'at') return true;
  return d.kind === 'in' && !(Number.isSafeInteger(d.ms) && Math.abs(d.ms as number) < FAR_MS);
}

type Write = Extract<KvClientRequest, { kind: 'write' }>;

/** What a write that may share an entry shares it by: its session's client and its keys' partition; and its bytes. */
interface Mergeable {
  client: string;
  partition: number;
  bytes: number;
}

/** A write that may share an entry: in a session, of a mergeable kind, its keys in one partition. */
function mergeable(req: KvClientRequest, slots: SlotMap): Mergeable | undefined {
  if (
    req.kind !== 'write' ||
    req.session === undefined ||
    req.scope !== undefined ||
    !MERGEABLE.has(req.write.op) ||
    deadlineAlone(req.write)
  ) {
    return undefined;
  }
  const keys = writeKeys(req.write);
  // A key of the transactions' reserved space is refused as the entry applies: the whole EXEC with it.
  if (keys.length === 0 || keys.some(isReservedKey)) return undefined;
  const partition = slots.partitionOfKey(keys[0]!);
  for (let i = 1; i < keys.length; i++) if (slots.partitionOfKey(keys[i]!) !== partition) return undefined;
  return { client: req.session.clientId, partition, bytes: writeBytes(req.write) };
}

/**
 * Wraps a {@link KvApi} so that consecutive writes of one pipeline (one
 * client session, one partition) are proposed as one log entry: an EXEC of
 * them in the session of the last, its list of answers handed back one per
 * write. Each write's answer is the one it gets alone; the writes apply
 * atomically, one after another, which is one of the orders the pipeline
 * allowed (nothing of another client's can come between writes the client
 * sent back to back without waiting for an answer). A failure of the
 * entry (no leader, a timeout) is every merged write's. Per write, this
 * saves what each log entry costs on every replica: a proposal, a log row
 * and its checksum, a decode, and a session's stored answer.
 *
 * Exactly-once holds because the merging happens here, where the session's
 * sequence numbers are handed out, before anything forwards or retries: a
 * retry sends the same EXEC with the same sequence number, and the numbers
 * of the other merged writes are never proposed. An EXEC is what every
 * version of the node applies, so a cluster in the middle of an upgrade
 * applies these entries alike.
 */
export function mergePipelinedWrites(
  api: KvApi,
  slots: SlotMap,
  opts: { limits?: Partial<MergeLimits>; onMerged?: (writes: number, entries: number) => void } = {},
): KvApi {
  const limits = { ...DEFAULT_MERGE_LIMITS, ...opts.limits };
  return {
    status: () => api.status(),
    execute: (req) => api.execute(req),
    async executeAll(reqs) {
      const info = reqs.map((r) => mergeable(r, slots));
      const sent: KvClientRequest[] = [];
      // How many of `reqs` each request sent stands for.
      const spans: number[] = [];
      for (let i = 0; i < reqs.length; ) {
        const first = info[i];
        let j = i + 1;
        if (first !== undefined) {
          let bytes = first.bytes;
          for (; j < reqs.length && j - i < limits.maxWrites; j++) {
            const next = info[j];
            if (next === undefined || next.partition !== first.partition || next.client !== first.client) break;
            bytes += next.bytes;
            if (bytes > limits.maxBytes) break;
          }
        }
        spans.push(j - i);
        if (j - i === 1) {
          sent.push(reqs[i++]!);
          continue;
        }
        // Every one of them was found mergeable: a write in a session.
        const run = reqs.slice(i, j) as Write[];
        i = j;
        sent.push({
          kind: 'write',
          write: { op: 'exec', writes: run.map((r) => r.write), watch: [] },
          session: { ...run[run.length - 1]!.session! },
        });
      }
      if (sent.length === reqs.length) return api.executeAll(reqs);
      const runs = spans.filter((n) => n > 1);
      opts.onMerged?.(
        runs.reduce((a, n) => a + n, 0),
        runs.length,
      );
      const answers = await api.executeAll(sent);
      const out: KvResponse[] = [];
      spans.forEach((n, k) => {
        const a = answers[k]!;
        if (n === 1) out.push(a);
        else if (a.type === 'list' && a.items !== null && a.items.length === n) out.push(...a.items);
        else for (let m = 0; m < n; m++) out.push(a);
      });
      return out;
    },
  };
}
