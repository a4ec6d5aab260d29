import type { Logger } from '@cohort/core';
import type { SlotMap, WatchFilter } from '@cohort/kv';
import { createParser } from 'eventsource-parser';
import type { FastifyReply } from 'fastify';
import { ApiError, type Encoding } from './http-codec.js';
import {
  type FeedEnd,
  type FeedEvent,
  type WatchFeed,
  type WatchSource,
  openLocalFeed,
  resumeToken,
  streamFeeds,
} from './http-watch.js';

/** A watch as the HTTP route hands it over: what to watch, from where, and the query as the client wrote it. */
export interface WatchRequest {
  filter: WatchFilter;
  encoding: Encoding;
  /** `key` or `prefix` as the client wrote it (in `encoding`), to ask another node for the same. */
  text: { key: string } | { prefix: string };
  /** `fromRevision`: a revision of one partition. */
  fromRevision?: number;
  /** `resume` or a `Last-Event-ID` header: a revision, or a resume token of every partition's revisions. */
  resume?: string;
  /** `partition`: the watch covers this partition alone (how nodes relay the parts they do not replicate). */
  partition?: number;
}

/** Options of {@link PartitionedWatch}. */
export interface PartitionedWatchOptions {
  slots: SlotMap;
  /** This node's watch source of partition `p`, when it replicates it. */
  local: (p: number) => WatchSource | undefined;
  /** HTTP addresses (`host:port`) of the nodes replicating partition `p`, those believed alive first. */
  replicas: (p: number) => string[];
  logger: Logger;
  /** How long a replica has to answer a relayed watch. @default 2000 */
  connectTimeoutMs?: number;
}

/** The positions of a resume token of `partitions` parts, or a 400 saying what one looks like. */
export function parseResumeToken(token: string, partitions: number): number[] {
  const parts = token.split('.');
  if (parts.length !== partitions || !parts.every((x) => /^[0-9]{1,15}$/.test(x))) {
    throw new ApiError(
      400,
      'BAD_REQUEST',
      `'${token}' is not a resume token of this cluster's ${partitions} partitions: give the id of the last event received (${partitions} revisions joined by dots), or the 'resume' of a range read`,
    );
  }
  return parts.map(Number);
}

/**
 * Watches over a partitioned key space. A key's watch is its partition's;
 * a prefix spans every partition, whose revisions are separate, so its
 * stream merges one feed per partition and names each event by a resume
 * token (every partition's last revision sent). Each partition's events
 * come in its log's order; the partitions' are interleaved as they apply,
 * so the whole is not one atomic cut unless the keys share a hash tag.
 * A partition this node does not replicate is relayed from a node that
 * does (the same watch, with `partition`); if that node stops, the stream
 * ends with an `error` event and the client resumes from its last id.
 */
export class PartitionedWatch {
  private readonly streams = new Set<() => void>();

  constructor(private readonly o: PartitionedWatchOptions) {}

  async serve(reply: FastifyReply, req: WatchRequest): Promise<void> {
    const { slots } = this.o;
    const track = (end: () => void) => {
      this.streams.add(end);
      return () => this.streams.delete(end);
    };
    if (req.partition !== undefined && (req.partition < 0 || req.partition >= slots.partitions)) {
      throw new ApiError(
        400,
        'BAD_REQUEST',
        `partition ${req.partition} does not exist: this cluster has ${slots.partitions}`,
      );
    }
    const one = req.partition ?? ('key' in req.filter ? slots.partitionOfKey(req.filter.key) : undefined);
    if (one !== undefined) {
      const from = req.fromRevision ?? revisionOf(req.resume);
      // A relayed watch (`partition`) must be served here; a key's watch is relayed when this node holds no replica.
      const feed =
        this.localFeed(one, req, from, req.partition !== undefined) ?? (await this.remoteFeed(one, req, from));
      streamFeeds(reply, [feed], {
        composite: false,
        logger: this.o.logger,
        track,
        headers: { 'x-cohort-applied-index': String(feed.applied) },
      });
      return;
    }
    if (req.fromRevision !== undefined) {
      throw new ApiError(
        400,
        'BAD_REQUEST',
        `a prefix watch spans the ${slots.partitions} partitions of this cluster, whose revisions are separate: resume with resume=<token> (the id of the last event received, or the 'resume' of a range read) instead of fromRevision`,
      );
    }
    const at = req.resume === undefined ? undefined : parseResumeToken(req.resume, slots.partitions);
    const feeds: WatchFeed[] = [];
    try {
      for (let p = 0; p < slots.partitions; p++) {
        const from = at === undefined ? undefined : at[p]! + 1;
        feeds.push(this.localFeed(p, req, from, false) ?? (await this.remoteFeed(p, req, from)));
      }
    } catch (err) {
      for (const f of feeds) f.cancel();
      throw err;
    }
    streamFeeds(reply, feeds, {
      composite: true,
      logger: this.o.logger,
      track,
      headers: { 'x-cohort-resume': resumeToken(feeds.map((f) => f.position)) },
    });
  }

  /** Ends every open stream (the server is closing). */
  closeAll(): void {
    for (const end of [...this.streams]) end();
  }

  /** Partition `p`'s feed on this node; undefined (or, when `required`, 421) if it holds no replica. */
  private localFeed(p: number, req: WatchRequest, from: number | undefined, required: boolean): WatchFeed | undefined {
    const source = this.o.local(p);
    if (source === undefined) {
      if (!required) return undefined;
      throw new ApiError(421, 'NOT_A_REPLICA', `this node holds no replica of partition ${p}`, { partition: p });
    }
    try {
      return openLocalFeed(source, req.filter, from, req.encoding);
    } catch (err) {
      if (err instanceof ApiError) err.details.partition = p;
      throw err;
    }
  }

  /** Partition `p`'s feed relayed from the first of its replicas that answers. */
  private async remoteFeed(p: number, req: WatchRequest, from: number | undefined): Promise<WatchFeed> {
    const tried: string[] = [];
    for (const address of this.o.replicas(p)) {
      const q = new URLSearchParams({ ...req.text, encoding: req.encoding, partition: String(p) });
      if (from !== undefined) q.set('fromRevision', String(from));
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), this.o.connectTimeoutMs ?? 2000);
      let res: Response;
      try {
        res = await fetch(`http://${address}/v1/watch?${q}`, { signal: abort.signal });
      } catch (err) {
        tried.push(`${address}: ${(err as Error).message}`);
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (res.status === 200 && res.body) return relay(res, abort, from);
      const body = (await res.json().catch(() => ({}))) as {
        error?: { code?: string; message?: string } & Record<string, unknown>;
      };
      const { code: _code, message, ...details } = body.error ?? {};
      if (res.status === 410) {
        throw new ApiError(410, 'COMPACTED', message ?? `partition ${p} no longer holds revision ${from}`, {
          ...details,
          partition: p,
        });
      }
      tried.push(`${address}: ${res.status} ${message ?? ''}`.trim());
    }
    throw new ApiError(
      503,
      'UNAVAILABLE',
      `no replica of partition ${p} serves the watch now (${tried.join('; ') || 'none known'}); retry shortly`,
      { partition: p },
    );
  }
}

function revisionOf(resume: string | undefined): number | undefined {
  if (resume === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(resume)) {
    throw new ApiError(400, 'BAD_REQUEST', `'${resume}' is not a revision: give the id of the last event received`);
  }
  return Number(resume) + 1;
}

/**
 * A feed of the events another node streams: each event as it sent it; its stream's end ends the feed.
 * Exported for tests.
 */
export function relay(res: Response, abort: AbortController, from: number | undefined): WatchFeed {
  const header = Number(res.headers.get('x-cohort-applied-index'));
  const applied = Number.isSafeInteger(header) ? header : 0;
  // Live from the replica's applied index when no revision was asked for.
  const position = from !== undefined ? from - 1 : applied;
  const held: FeedEvent[] = [];
  let send: ((events: FeedEvent[]) => void) | undefined;
  let end: ((why: FeedEnd) => void) | undefined;
  let ended: FeedEnd | undefined;
  let cancelled = false;
  const finish = (why: FeedEnd) => {
    if (ended || cancelled) return;
    ended = why;
    abort.abort();
    end?.(why);
  };
  const parser = createParser({
    onEvent: (m) => {
      let data: Record<string, unknown>;
      try {
        data = JSON.parse(m.data) as Record<string, unknown>;
      } catch {
        return finish({ event: 'error', data: { code: 'UNAVAILABLE', message: 'a replica sent a malformed event' } });
      }
      if (m.event === 'compacted' || m.event === 'error') return finish({ event: m.event, data });
      // Only the last event of a revision carries an id (see streamFeeds); the others name it in their data.
      const closes = m.id !== undefined && m.id !== '';
      const revision = closes ? Number(m.id) : Number(data.modRevision);
      const e: FeedEvent = { revision, type: m.event ?? 'message', data, closes };
      if (send) send([e]);
      else held.push(e);
    },
  });
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }));
      }
    } catch {
      // Aborted, or the replica's connection broke: either way the feed ends below.
    }
    finish({
      event: 'error',
      data: { code: 'UNAVAILABLE', message: 'the replica relaying this partition stopped; resume from the last id' },
    });
  })();
  return {
    position,
    applied,
    start(s, e) {
      send = s;
      end = e;
      if (held.length > 0) s(held.splice(0));
      if (ended) e(ended);
    },
    cancel() {
      cancelled = true;
      abort.abort();
    },
  };
}
