import { silentLogger } from '@cohort/core';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { type FeedEnd, type FeedEvent, type WatchFeed, streamFeeds } from '../src/http-watch.js';
import { relay } from '../src/partitioned-watch.js';

/** One server-sent event as a client reads it: its id field (absent when none), type and data. */
interface Frame {
  id: string | undefined;
  event: string;
  data: Record<string, unknown>;
}

/** Splits a stream's text into its frames with data (comments and id-only frames left out). */
function frames(text: string): Frame[] {
  const out: Frame[] = [];
  for (const block of text.split('\n\n')) {
    let id: string | undefined;
    let event = 'message';
    let data: string | undefined;
    for (const line of block.split('\n')) {
      if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data = line.slice(6);
    }
    if (data !== undefined) out.push({ id, event, data: JSON.parse(data) as Record<string, unknown> });
  }
  return out;
}

/** A feed that sends `events` once started. */
function feed(position: number, events: FeedEvent[]): WatchFeed {
  return {
    position,
    applied: position,
    start: (send: (events: FeedEvent[]) => void, _end: (why: FeedEnd) => void) => send(events),
    cancel: () => {},
  };
}

const put = (revision: number, key: string, closes: boolean): FeedEvent => ({
  revision,
  type: 'put',
  data: { type: 'put', key, modRevision: revision },
  closes,
});

const apps: ReturnType<typeof Fastify>[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

/** Serves `feeds` on a watch route and reads the stream until `n` frames with data arrived. */
async function stream(feeds: () => WatchFeed[], composite: boolean, n: number): Promise<Frame[]> {
  const app = Fastify();
  apps.push(app);
  app.get('/watch', (_req, reply) => {
    streamFeeds(reply, feeds(), { composite, logger: silentLogger, track: () => () => {} });
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const abort = new AbortController();
  const res = await fetch(`${address}/watch`, { signal: abort.signal });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (frames(text).length < n || !text.endsWith('\n\n')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  abort.abort();
  return frames(text);
}

describe('watch streams: only the last event of a revision carries an id', () => {
  it('one partition: the id is the revision, on its last event only', async () => {
    const got = await stream(() => [feed(6, [put(7, 'a', false), put(7, 'b', true), put(8, 'c', true)])], false, 3);
    expect(got.map((f) => [f.id, f.data.key])).toEqual([
      [undefined, 'a'],
      ['7', 'b'],
      ['8', 'c'],
    ]);
  });

  it('several partitions: the resume token moves only once a revision is whole', async () => {
    const got = await stream(
      () => [feed(6, [put(7, 'a', false), put(7, 'b', true)]), feed(20, [put(21, 'x', true)])],
      true,
      3,
    );
    expect(got.map((f) => [f.id, f.data.key, f.data.partition])).toEqual([
      [undefined, 'a', 0],
      ['7.20', 'b', 0],
      ['7.21', 'x', 1],
    ]);
  });

  it("a relayed partition keeps the replica's marks: an event without an id does not end its revision", async () => {
    const body = [
      ': watching from revision 7',
      `event: put\ndata: ${JSON.stringify({ type: 'put', key: 'a', modRevision: 7 })}`,
      `id: 7\nevent: put\ndata: ${JSON.stringify({ type: 'put', key: 'b', modRevision: 7 })}`,
      `id: 8\nevent: delete\ndata: ${JSON.stringify({ type: 'delete', key: 'a', modRevision: 8 })}`,
      '',
    ].join('\n\n');
    const res = new Response(body, { headers: { 'x-cohort-applied-index': '8' } });
    const f = relay(res, new AbortController(), 7);
    expect(f.position).toBe(6);
    const got: FeedEvent[] = [];
    await new Promise<void>((resolve) => {
      f.start(
        (events) => got.push(...events),
        () => resolve(),
      );
    });
    expect(got.map((e) => [e.revision, e.type, e.closes])).toEqual([
      [7, 'put', false],
      [7, 'put', true],
      [8, 'delete', true],
    ]);
  });
});
