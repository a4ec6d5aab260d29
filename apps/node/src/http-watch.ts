import type { Logger } from '@cohort/core';
import type { Entry } from '@cohort/core';
import { type Compacted, type KvEvent, type WatchFilter, type WatchHandle, eventsFromEntries } from '@cohort/kv';
import type { FastifyReply } from 'fastify';
import { ApiError, type Encoding, recordJson, toText } from './http-codec.js';

/** The changes a replica applies, as watches need them (a `WatchHub`). */
export interface WatchHubLike {
  readonly oldest: number;
  readonly appliedIndex: number;
  watch(
    filter: WatchFilter,
    from: number,
    send: (events: KvEvent[]) => void,
    reset: (oldest: number) => void,
  ): WatchHandle | Compacted;
}

/** Bytes of events a slow watcher may leave unread before its stream is ended. */
const MAX_BUFFERED = 8 * 1024 * 1024;
/** A comment line this often keeps idle connections (and proxies) open. */
const KEEPALIVE_MS = 15_000;

/** The most log entries read to serve a watch from before the history. */
const MAX_LOG_ENTRIES = 100_000;

/** The watches of one HTTP server: where their events come from, and the streams to end when it closes. */
export class WatchSource {
  private readonly streams = new Set<() => void>();

  /**
   * @param hub the changes applied since the process started, and live ones
   * @param log the log entries in `[lo, hi)` while the log still holds them
   *   (undefined when compacted): a watch from before the history is served
   *   from them when they tell its events
   */
  constructor(
    readonly hub: WatchHubLike,
    private readonly log?: (lo: number, hi: number) => Entry[] | undefined,
  ) {}

  /** The events of `filter` in revisions `[from, to)` told by the log, or undefined when it cannot tell them. */
  fromLog(filter: WatchFilter, from: number, to: number): KvEvent[] | undefined {
    if (this.log === undefined || to - from > MAX_LOG_ENTRIES) return undefined;
    const entries = this.log(from, to);
    return entries && eventsFromEntries(entries, filter);
  }

  /** Ends every open stream (the server is closing). */
  closeAll(): void {
    for (const end of [...this.streams]) end();
  }

  /** @internal */
  track(end: () => void): () => void {
    this.streams.add(end);
    return () => this.streams.delete(end);
  }

  /** Open streams. */
  get open(): number {
    return this.streams.size;
  }
}

function eventJson(e: KvEvent, encoding: Encoding, now: number): Record<string, unknown> {
  if (e.type === 'put' && e.record) return { type: 'put', ...recordJson(e.record, encoding, now) };
  const out: Record<string, unknown> = { type: e.type, key: toText(e.key, encoding), modRevision: e.revision };
  if (e.value !== undefined) out.value = toText(e.value, encoding);
  return out;
}

/** One SSE message per event; the id is the revision, so a client resumes from the last id plus one. */
function frame(events: KvEvent[], encoding: Encoding): string {
  const now = Date.now();
  let out = '';
  for (const e of events)
    out += `id: ${e.revision}\nevent: ${e.type}\ndata: ${JSON.stringify(eventJson(e, encoding, now))}\n\n`;
  return out;
}

/**
 * Serves a watch as server-sent events on `reply`: the held events from
 * `from` (live changes only when absent), then each change as it applies.
 * Answers 410 COMPACTED (with the oldest revision held) when `from` is older
 * than the history; a stream is ended with a `compacted` event if a
 * snapshot replaces the replica's data, and with an `error` event if the
 * client does not read its events.
 */
export function serveWatch(
  source: WatchSource,
  reply: FastifyReply,
  opts: { filter: WatchFilter; from: number | undefined; encoding: Encoding; logger: Logger },
): void {
  const { hub } = source;
  let from = opts.from ?? hub.appliedIndex + 1;
  // Before the history, the log may still tell the events; read at once, so none is missed before the watch starts.
  const early = from < hub.oldest ? source.fromLog(opts.filter, from, hub.oldest) : [];
  if (early === undefined) {
    throw new ApiError(
      410,
      'COMPACTED',
      `revision ${from} is no longer held by this node; the oldest it can watch from is ${hub.oldest}: read the current state (GET /v1/kv) and watch from its revision + 1`,
      { oldestRevision: hub.oldest },
    );
  }
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-cohort-applied-index': String(hub.appliedIndex),
  });
  res.write(`: watching from revision ${from}\n\n`);
  if (early.length > 0) res.write(frame(early, opts.encoding));
  from = Math.max(from, hub.oldest);
  const live: { handle?: WatchHandle; keepalive?: NodeJS.Timeout } = {};
  let ended = false;
  const end = (last?: string): void => {
    if (ended) return;
    ended = true;
    live.handle?.cancel();
    if (live.keepalive) clearInterval(live.keepalive);
    untrack();
    if (last && !res.destroyed) res.write(last);
    res.end();
  };
  const untrack = source.track(() => end());
  const write = (chunk: string): void => {
    if (ended) return;
    res.write(chunk);
    if (res.writableLength > MAX_BUFFERED) {
      opts.logger.warn('a watcher does not read its events; its stream ends', { buffered: res.writableLength });
      end(
        `event: error\ndata: ${JSON.stringify({ code: 'SLOW_WATCHER', message: 'events were not read fast enough; resume from the last id + 1' })}\n\n`,
      );
    }
  };
  const w = hub.watch(
    opts.filter,
    from,
    (events) => write(frame(events, opts.encoding)),
    (oldest) =>
      end(
        `event: compacted\ndata: ${JSON.stringify({ code: 'COMPACTED', message: 'this replica installed a snapshot; resume from the oldest revision', oldestRevision: oldest })}\n\n`,
      ),
  );
  if ('compacted' in w) {
    end(`event: compacted\ndata: ${JSON.stringify({ code: 'COMPACTED', oldestRevision: w.oldest })}\n\n`);
    return;
  }
  live.handle = w;
  live.keepalive = setInterval(() => write(': keepalive\n\n'), KEEPALIVE_MS);
  live.keepalive.unref();
  res.on('close', () => end());
  res.on('error', () => end());
}
