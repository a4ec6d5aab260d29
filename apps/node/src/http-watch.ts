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

/** One event of a watch, ready to frame: its revision in its partition, its type and its JSON. */
export interface FeedEvent {
  revision: number;
  type: string;
  data: Record<string, unknown>;
  /**
   * Whether it is the last event of its revision. The events of one revision (an MSET, a transaction, a
   * pipeline's merged writes) share it, and a client resumes after a whole revision: only this one carries
   * the id a client resumes from.
   */
  closes: boolean;
}

/** The last frame of a feed that ended on its own: `compacted` (resume from the oldest revision) or `error`. */
export interface FeedEnd {
  event: 'compacted' | 'error';
  data: Record<string, unknown>;
}

/**
 * One partition's part of a watch: opened (so a revision no longer held is
 * refused before the stream starts), holding its events until started.
 */
export interface WatchFeed {
  /** The revision up to which the watcher has its events: the feed sends those after it. */
  readonly position: number;
  /** The replica's applied index when the feed opened (the `X-Cohort-Applied-Index` of its stream). */
  readonly applied: number;
  /** Sends held and future events to `send`; `end` once if the feed ends on its own. */
  start(send: (events: FeedEvent[]) => void, end: (why: FeedEnd) => void): void;
  cancel(): void;
}

/** 410 COMPACTED for a watch from `from`, older than what `oldest` starts. */
export function compactedError(from: number, oldest: number, extra: Record<string, unknown> = {}): ApiError {
  return new ApiError(
    410,
    'COMPACTED',
    `revision ${from} is no longer held by this node; the oldest it can watch from is ${oldest}: read the current state (GET /v1/kv) and watch from its revision + 1`,
    { oldestRevision: oldest, ...extra },
  );
}

/**
 * Opens a watch of `filter` on this replica's changes: the held events from
 * `from` (live changes only when absent; the log tells those before the
 * history while it holds them), then each change as it applies. Throws 410
 * COMPACTED when `from` is older than both; the feed ends with `compacted` if
 * a snapshot later replaces the replica's data.
 */
export function openLocalFeed(
  source: WatchSource,
  filter: WatchFilter,
  from: number | undefined,
  encoding: Encoding,
): WatchFeed {
  const { hub } = source;
  const first = from ?? hub.appliedIndex + 1;
  // Before the history, the log may still tell the events; read at once, so none is missed before the watch starts.
  const early = first < hub.oldest ? source.fromLog(filter, first, hub.oldest) : [];
  if (early === undefined) throw compactedError(first, hub.oldest);
  const held: KvEvent[] = [...early];
  let send: ((events: FeedEvent[]) => void) | undefined;
  let end: ((why: FeedEnd) => void) | undefined;
  let ended: FeedEnd | undefined;
  // Each batch holds whole revisions (the hub's, the log's), so the last event of a revision in it is the last.
  const convert = (events: KvEvent[]): FeedEvent[] => {
    const now = Date.now();
    return events.map((e, i) => ({
      revision: e.revision,
      type: e.type,
      data: eventJson(e, encoding, now),
      closes: events[i + 1]?.revision !== e.revision,
    }));
  };
  const w = hub.watch(
    filter,
    Math.max(first, hub.oldest),
    (events) => (send ? send(convert(events)) : held.push(...events)),
    (oldest) => {
      const why: FeedEnd = {
        event: 'compacted',
        data: {
          code: 'COMPACTED',
          message: 'this replica installed a snapshot; resume from the oldest revision',
          oldestRevision: oldest,
        },
      };
      if (end) end(why);
      else ended = why;
    },
  );
  if ('compacted' in w) throw compactedError(first, w.oldest);
  return {
    position: first - 1,
    applied: hub.appliedIndex,
    start(s, e) {
      send = s;
      end = e;
      if (held.length > 0) s(convert(held.splice(0)));
      if (ended) e(ended);
    },
    cancel: () => w.cancel(),
  };
}

/** How {@link streamFeeds} names events: by revision (one partition), or by every partition's position (several). */
export interface StreamOptions {
  /** Several partitions: each event's id is the position of every feed, joined by dots, and its data names its partition. */
  composite: boolean;
  logger: Logger;
  /** Registers the stream's end with whoever ends streams on close; returns its unregistration. */
  track: (end: () => void) => () => void;
  /** Response headers besides the event-stream ones. */
  headers?: Record<string, string>;
}

/** The resume token of positions `at`: the revisions, one per partition, joined by dots. */
export function resumeToken(at: readonly number[]): string {
  return at.join('.');
}

/**
 * Serves `feeds` as server-sent events on `reply`. One feed: an event's id
 * is its revision, so a client resumes from the last id plus one. Several
 * (a prefix over partitions, whose revisions are separate): an event's id is
 * the resume token, every partition's last revision sent, and the stream
 * opens with the token it starts from, so a client that saw no event can
 * resume as well. Either way only the last event of a revision carries an id:
 * a client cut off between two events of one revision keeps the id before
 * them (as `EventSource` does for an event without one) and gets the whole
 * revision again, where an id on each would have made it resume past the
 * rest. A watcher that does not read its events has its stream ended with an
 * `error` event.
 */
export function streamFeeds(reply: FastifyReply, feeds: WatchFeed[], opts: StreamOptions): void {
  const at = feeds.map((f) => f.position);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    ...opts.headers,
  });
  res.write(
    opts.composite
      ? `: watching ${feeds.length} partitions after revisions ${resumeToken(at)}\nid: ${resumeToken(at)}\n\n`
      : `: watching from revision ${at[0]! + 1}\n\n`,
  );
  let ended = false;
  const timer: { keepalive?: NodeJS.Timeout } = {};
  const end = (last?: string): void => {
    if (ended) return;
    ended = true;
    for (const f of feeds) f.cancel();
    if (timer.keepalive) clearInterval(timer.keepalive);
    untrack();
    if (last && !res.destroyed) res.write(last);
    res.end();
  };
  const untrack = opts.track(() => end());
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
  feeds.forEach((feed, p) => {
    feed.start(
      (events) => {
        let out = '';
        for (const e of events) {
          const data = opts.composite ? { ...e.data, partition: p } : e.data;
          let id = '';
          if (e.closes) {
            at[p] = e.revision;
            id = `id: ${opts.composite ? resumeToken(at) : String(e.revision)}\n`;
          }
          out += `${id}event: ${e.type}\ndata: ${JSON.stringify(data)}\n\n`;
        }
        write(out);
      },
      (why) =>
        end(
          `event: ${why.event}\ndata: ${JSON.stringify(opts.composite ? { ...why.data, partition: p } : why.data)}\n\n`,
        ),
    );
  });
  if (ended) return;
  timer.keepalive = setInterval(() => write(': keepalive\n\n'), KEEPALIVE_MS);
  timer.keepalive.unref();
  res.on('close', () => end());
  res.on('error', () => end());
}

/**
 * Serves a watch of one replica's changes as server-sent events on `reply`
 * (see {@link openLocalFeed} and {@link streamFeeds}): 410 COMPACTED (with
 * the oldest revision held) when `from` is older than the history.
 */
export function serveWatch(
  source: WatchSource,
  reply: FastifyReply,
  opts: { filter: WatchFilter; from: number | undefined; encoding: Encoding; logger: Logger },
): void {
  const feed = openLocalFeed(source, opts.filter, opts.from, opts.encoding);
  streamFeeds(reply, [feed], {
    composite: false,
    logger: opts.logger,
    track: (end) => source.track(end),
    headers: { 'x-cohort-applied-index': String(feed.applied) },
  });
}
