import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster as Cluster, type ProcCluster, type ProcNode, poll } from './helpers/processes.js';

// Fast timing so the scenario stays short.
const HEARTBEAT_MS = 50;
const ELECTION_MS = 300;
let cluster: ProcCluster | undefined;

afterAll(async () => {
  await cluster?.killAll();
});

interface Answer {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers of many shapes
  body: any;
}

async function call(
  node: ProcNode,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const init: RequestInit = { method, signal: AbortSignal.timeout(5000), headers };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { ...headers, 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' };
  }
  const res = await fetch(`http://127.0.0.1:${node.http}${path}`, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text.length > 0 ? JSON.parse(text) : undefined };
}

interface SseEvent {
  id: number;
  event: string;
  data: { type: string; key: string; value?: string; modRevision: number; version?: number };
}

/** A server-sent event stream read with fetch: events as they arrive, and a way to wait for some. */
class Watch {
  readonly events: SseEvent[] = [];
  ended = false;
  private readonly abort = new AbortController();
  private constructor(readonly status: number) {}

  static async open(node: ProcNode, query: string): Promise<Watch | Answer> {
    const abort = new AbortController();
    const res = await fetch(`http://127.0.0.1:${node.http}/v1/watch?${query}`, { signal: abort.signal });
    if (res.status !== 200) return { status: res.status, headers: res.headers, body: await res.json() };
    const w = new Watch(res.status);
    (w as unknown as { abort: AbortController }).abort = abort;
    void w.read(res.body as ReadableStream<Uint8Array>);
    return w;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk, { stream: true });
        for (let at = buf.indexOf('\n\n'); at >= 0; at = buf.indexOf('\n\n')) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          const fields = Object.fromEntries(
            block
              .split('\n')
              .filter((l) => !l.startsWith(':') && l.includes(': '))
              .map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]),
          );
          if (fields.data)
            this.events.push({
              id: Number(fields.id),
              event: fields.event ?? 'message',
              data: JSON.parse(fields.data),
            });
        }
      }
    } catch {
      // Aborted, or the node went away.
    }
    this.ended = true;
  }

  async until(n: number, ms = 10_000): Promise<SseEvent[]> {
    return poll(`${n} watch events`, ms, async () => (this.events.length >= n ? this.events : undefined));
  }

  close(): void {
    this.abort.abort();
  }
}

describe('the HTTP API v1 on three cohort processes', () => {
  it('serves keys of any bytes with revisions, CAS, ranges, read modes, the cluster, OpenAPI and watches that survive a restart', async (ctx) => {
    // Lease reads are on in the configuration file; the flags set the rest.
    const config = join(process.env.TMPDIR ?? '/tmp', `cohort-e2e-http-${process.pid}.json`);
    writeFileSync(config, JSON.stringify({ node: { id: 'n1' }, raft: { leaseReads: true } }));
    cluster = await Cluster.create(3, [
      '--config',
      config,
      '--heartbeat-ms',
      String(HEARTBEAT_MS),
      '--election-timeout-ms',
      String(ELECTION_MS),
      // Every row the nodes apply or read is read ahead on the store's thread first (auto: only while reads go to the disk).
      '--read-ahead',
      'on',
    ]);
    const c = cluster;
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 45_000);
    const [f1, f2] = c.nodes.filter((n) => n !== leader) as [ProcNode, ProcNode];

    // Keys with a slash, written through a follower, read through the other.
    const put = await call(f1, 'PUT', '/v1/kv/app/config', { value: 'v1' });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ key: 'app/config', value: 'v1', version: 1 });
    const rev = put.body.modRevision as number;
    expect(put.body.createRevision).toBe(rev);
    expect((await call(f2, 'GET', '/v1/kv/app%2Fconfig')).body).toEqual({
      key: 'app/config',
      value: 'v1',
      createRevision: rev,
      modRevision: rev,
      version: 1,
    });
    // Binary keys and values in base64.
    const bin = await call(f1, 'PUT', '/v1/kv/%00%FF?encoding=base64', {
      value: Buffer.from([1, 2, 255]).toString('base64'),
    });
    expect(bin.body.key).toBe('AP8=');
    expect((await call(f2, 'GET', '/v1/kv/%00%ff?encoding=base64')).body.value).toBe('AQL/');

    // Compare-and-swap: a stale revision gets 412 with the current record; the right one swaps.
    const lost = await call(f2, 'PUT', '/v1/kv/app/config', { value: 'v2', ifModRevision: rev - 1 });
    expect(lost.status).toBe(412);
    expect(lost.body.error).toMatchObject({ code: 'PRECONDITION_FAILED', current: { value: 'v1', modRevision: rev } });
    const won = await call(f2, 'PUT', '/v1/kv/app/config', { value: 'v2', ifModRevision: rev });
    expect(won.body).toMatchObject({ value: 'v2', version: 2, createRevision: rev });
    // Prefer: return=minimal answers what the write tells (through a follower and on the leader alike).
    for (const [n, value, version] of [[f1, 'v3', 3] as const, [leader, 'v4', 4] as const]) {
      const minimal = await call(n, 'PUT', '/v1/kv/app/config', { value }, { prefer: 'return=minimal' });
      expect(minimal.status).toBe(200);
      expect(minimal.headers.get('preference-applied')).toBe('return=minimal');
      const at = minimal.body.revision as number;
      expect(minimal.body).toEqual({ key: 'app/config', modRevision: at, revision: at });
      expect((await call(n, 'GET', '/v1/kv/app/config')).body).toMatchObject({ value, version, modRevision: at });
    }
    expect((await call(leader, 'DELETE', '/v1/kv/app/config?ifVersion=1')).status).toBe(412);
    const del = await call(leader, 'DELETE', '/v1/kv/app/config?ifVersion=4');
    expect(del.body).toMatchObject({ deleted: 1, prev: { value: 'v4' } });
    expect((await call(f1, 'GET', '/v1/kv/app/config')).body.error.code).toBe('NOT_FOUND');

    // Range reads a page at a time.
    for (let i = 0; i < 5; i++) await call(f1, 'PUT', `/v1/kv/r/${i}`, `value ${i}`);
    const page = await call(f2, 'GET', '/v1/kv?prefix=r/&limit=3');
    expect(page.body.kvs.map((r: { key: string }) => r.key)).toEqual(['r/0', 'r/1', 'r/2']);
    expect(page.body).toMatchObject({ more: true, next: 'r/2' });
    const rest = await call(f2, 'GET', `/v1/kv?prefix=r/&limit=3&after=${page.body.next}`);
    expect(rest.body.kvs.map((r: { key: string }) => r.key)).toEqual(['r/3', 'r/4']);
    expect(rest.body.more).toBe(false);
    expect((await call(f2, 'GET', '/v1/kv?start=r/1&end=r/3')).body.kvs).toHaveLength(2);

    // Read modes: a stale read on a follower reports its applied index; a lease read is the leader's.
    const stale = await poll('the follower to apply r/4', 5000, async () => {
      const a = await call(f2, 'GET', '/v1/kv/r/4?consistency=stale');
      return a.status === 200 ? a : undefined;
    });
    expect(Number(stale.headers.get('x-cohort-applied-index'))).toBeGreaterThanOrEqual(rev);
    expect(stale.body.appliedIndex).toBe(Number(stale.headers.get('x-cohort-applied-index')));
    const leaseOnFollower = await call(f2, 'GET', '/v1/kv/r/4?consistency=lease');
    expect(leaseOnFollower.status).toBe(503);
    expect(leaseOnFollower.body.error).toMatchObject({ code: 'NOT_LEADER', leader: leader.id });
    const lease = await call(leader, 'GET', '/v1/kv/r/4?consistency=lease');
    expect(lease.body.value).toBe('value 4');

    // The cluster, the OpenAPI document, and the error shape of the router.
    const clusterView = (await call(f1, 'GET', '/v1/cluster')).body;
    expect(clusterView).toMatchObject({ id: f1.id, leader: leader.id, role: 'follower' });
    expect(clusterView.voters.sort()).toEqual(c.nodes.map((n) => n.id).sort());
    expect(clusterView.term).toBeGreaterThan(0);
    const doc = (await call(f1, 'GET', '/v1/openapi.json')).body;
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/kv', '/v1/watch', '/v1/cluster']));
    expect((await call(f1, 'GET', '/nope')).body).toEqual({
      error: { code: 'NOT_FOUND', message: expect.any(String) },
    });
    expect((await call(f1, 'PATCH', '/v1/kv/a/b')).status).toBe(405);
    // The remaining routes: increments, status, members, health, metrics, the consistency check.
    expect((await call(f1, 'POST', '/v1/kv/counters/a/incr', { by: 5 })).body).toEqual({
      key: 'counters/a',
      value: '5',
    });
    expect((await call(f2, 'POST', '/v1/kv/counters/a/incr')).body.value).toBe('6');
    expect((await call(f1, 'POST', '/v1/kv/r/0/incr')).body.error.code).toBe('COMMAND');
    expect((await call(f2, 'GET', '/v1/status')).body).toMatchObject({ id: f2.id, leader: leader.id });
    expect((await call(f2, 'GET', '/healthz')).body).toEqual({ ok: true });
    const members = await poll('gossip to list every node', 10_000, async () => {
      const m = (await call(f2, 'GET', '/v1/members')).body.members as { id: string }[];
      return m.length === 3 ? m : undefined;
    });
    expect(members.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
    const metrics = await (await fetch(`http://127.0.0.1:${f1.http}/metrics`)).text();
    expect(metrics).toMatch(/cohort_requests_total\{frontend="http",command="cond",outcome="ok"\}/);
    // The follower read ahead the rows of the entries it appended, and read them on its thread.
    expect(metrics).toMatch(/^cohort_storage_read_ahead 1$/m);
    const readAhead = /^cohort_storage_read_ahead_keys_total\{outcome="read"\} (\d+)$/m.exec(metrics);
    expect(Number(readAhead?.[1])).toBeGreaterThan(0);
    // The leader's row cache (on by default): a key written twice has the row its second write left cached, a
    // key that missed twice (another key read between) has its absence cached, and reads then come from memory.
    // Reads before the writer thread committed the puts are answered by the store's overlay, so read until hits
    // show.
    for (const [key, value] of [
      ['rc/1', 'one'],
      ['rc/2', 'two'],
    ]) {
      await call(leader, 'PUT', `/v1/kv/${key}`, { value: `${value} first` });
      await call(leader, 'PUT', `/v1/kv/${key}`, { value });
    }
    const counted = (text: string, name: string): number =>
      Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    const leaderMetrics = await poll('the leader to answer reads from its row cache', 10_000, async () => {
      for (const key of ['rc/none/a', 'rc/none/b'])
        expect((await call(leader, 'GET', `/v1/kv/${key}`)).status).toBe(404);
      expect((await call(leader, 'GET', '/v1/kv/rc/1')).body.value).toBe('one');
      expect((await call(leader, 'GET', '/v1/kv/rc/2')).body.value).toBe('two');
      const text = await (await fetch(`http://127.0.0.1:${leader.http}/metrics`)).text();
      const hits = counted(text, 'cohort_storage_row_cache_reads_total\\{outcome="hit"\\}');
      return hits >= 2 && counted(text, 'cohort_storage_row_cache_admitted_total') >= 2 ? text : undefined;
    });
    expect(counted(leaderMetrics, 'cohort_storage_row_cache_written_total')).toBeGreaterThanOrEqual(2);
    expect(counted(leaderMetrics, 'cohort_storage_row_cache_reads_total\\{outcome="miss"\\}')).toBeGreaterThanOrEqual(
      4,
    );
    expect(counted(leaderMetrics, 'cohort_storage_row_cache_bytes')).toBeGreaterThan(0);
    // A replica whose digest was not taken in time (a loaded machine) makes the check `incomplete`, which says
    // nothing either way: check again. `inconsistent` ends the wait and fails.
    const check = await poll('a consistency check every replica answered', 20_000, async () => {
      const r = await call(leader, 'POST', '/v1/admin/consistency-check');
      return r.body.verdict === 'incomplete' ? undefined : r;
    });
    expect(check.body.verdict).toBe('consistent');

    // Puts arriving together on many connections share log entries (one revision), each answered with its own
    // record; puts of one key never share one, so each has a revision of its own and its own version.
    const burst = await poll('concurrent puts to share an entry', 20_000, async () => {
      const tag = Math.random().toString(36).slice(2, 8);
      const answers = await Promise.all([
        ...Array.from({ length: 24 }, (_, i) => call(leader, 'PUT', `/v1/kv/m/${tag}/${i}`, { value: `v${i}` })),
        ...Array.from({ length: 8 }, (_, i) => call(f1, 'PUT', `/v1/kv/m/${tag}/same`, { value: `s${i}` })),
      ]);
      for (const a of answers) expect(a.status).toBe(200);
      const distinct = answers.slice(0, 24).map((a) => a.body);
      const shared = new Set(distinct.map((r) => r.modRevision)).size < distinct.length;
      return shared ? { distinct, same: answers.slice(24).map((a) => a.body), tag } : undefined;
    });
    burst.distinct.forEach((r, i) =>
      expect(r).toMatchObject({ key: `m/${burst.tag}/${i}`, value: `v${i}`, version: 1 }),
    );
    expect(new Set(burst.same.map((r) => r.modRevision)).size).toBe(8);
    expect(burst.same.map((r) => r.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const lastSame = burst.same.reduce((a, r) => (r.modRevision > a.modRevision ? r : a));
    expect((await call(f2, 'GET', `/v1/kv/m/${burst.tag}/same`)).body).toMatchObject({
      value: lastSame.value,
      version: 8,
    });
    const merged = await (await fetch(`http://127.0.0.1:${leader.http}/metrics`)).text();
    expect(counted(merged, 'cohort_merged_conditional_entries_total')).toBeGreaterThan(0);

    // A watch of a prefix through a follower, from a revision in the past.
    const w1 = await Watch.open(f1, `prefix=w/&fromRevision=${rev}`);
    if (!(w1 instanceof Watch)) throw new Error(`watch refused: ${JSON.stringify(w1.body)}`);
    const first = await call(leader, 'PUT', '/v1/kv/w/1', { value: 'one' });
    const [seen] = await w1.until(1);
    expect(seen).toMatchObject({
      id: first.body.modRevision,
      event: 'put',
      data: { key: 'w/1', value: 'one', version: 1 },
    });

    // The node the watch was connected to restarts; writes go on meanwhile.
    await c.kill(f1);
    await poll('the watch stream to end', 5000, async () => (w1.ended ? true : undefined));
    await call(leader, 'PUT', '/v1/kv/w/2', { value: 'two' });
    await call(leader, 'DELETE', '/v1/kv/w/1');
    await call(leader, 'PUT', '/v1/kv/other', { value: 'not watched' });
    c.start(f1);
    await poll(`${f1.id} to serve HTTP again`, 20_000, async () => c.status(f1));
    const resumed = await Watch.open(f1, `prefix=w/&fromRevision=${seen!.id + 1}`);
    if (!(resumed instanceof Watch)) throw new Error(`resume refused: ${JSON.stringify(resumed.body)}`);
    const events = await resumed.until(2);
    // The message names each event's revision and version: a duplicate apply and a replay look alike otherwise.
    expect(
      events.map((e) => [e.event, e.data.key]),
      `resumed from ${seen!.id + 1}: ${JSON.stringify(events)}`,
    ).toEqual([
      ['put', 'w/2'],
      ['delete', 'w/1'],
    ]);
    expect(events[0]!.id).toBeGreaterThan(seen!.id);
    // Live changes keep coming after the resume.
    await call(f2, 'PUT', '/v1/kv/w/3', { value: 'three' });
    expect((await resumed.until(3))[2]!.data).toMatchObject({ key: 'w/3', value: 'three' });
    resumed.close();

    // Before its history, the restarted node serves a watch from its log when no entry there touches the watched keys.
    const quiet = await Watch.open(f1, `prefix=zz/&fromRevision=${rev}`);
    expect(quiet).toBeInstanceOf(Watch);
    (quiet as Watch).close();
    // From the start: the write before the restart comes from the log (no record, its value), the rest from history.
    const replay = await Watch.open(f1, 'prefix=w/&fromRevision=1');
    if (!(replay instanceof Watch)) throw new Error(`replay refused: ${JSON.stringify(replay.body)}`);
    const all = await replay.until(4);
    expect(all.map((e) => [e.event, e.data.key])).toEqual([
      ['put', 'w/1'],
      ['put', 'w/2'],
      ['delete', 'w/1'],
      ['put', 'w/3'],
    ]);
    expect(all[0]).toMatchObject({ id: seen!.id, data: { value: 'one', modRevision: seen!.id } });
    replay.close();
    // A revision whose changes this node can no longer tell (compare-and-swaps before its restart) answers 410
    // with the oldest revision it can watch from.
    const gone = await Watch.open(f1, 'prefix=app/&fromRevision=1');
    expect(gone).toMatchObject({ status: 410, body: { error: { code: 'COMPACTED' } } });
    expect((gone as Answer).body.error.oldestRevision).toBeGreaterThan(1);

    // A node with a watch open stops cleanly on SIGTERM: the stream ends, the process exits 0.
    const open = await Watch.open(f2, 'prefix=w/');
    expect(open).toBeInstanceOf(Watch);
    expect(await c.terminate(f2)).toBe(0);
    await poll('the watch stream to end', 5000, async () => ((open as Watch).ended ? true : undefined));
  }, 90_000);
});
