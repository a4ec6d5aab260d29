import { readFile, readdir } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { EventLog } from './event-log.js';
import type { MetricsHistory } from './metrics-history.js';

/** The built dashboard (`@cohort/dashboard`): where its files lie, and how to build it when they do not. */
export interface DashboardAssets {
  dir: string;
  isBuilt(): boolean;
  buildCommand: string;
}

/** Options of {@link registerDashboardRoutes}. */
export interface DashboardRoutesOptions {
  assets: DashboardAssets;
  history: MetricsHistory;
  events: EventLog;
}

/** Where the dashboard is served. */
export const UI_PREFIX = '/ui';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/** Every file under `dir`, by its path relative to it with `/` separators. */
async function listFiles(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    out.add(relative(dir, join(e.parentPath, e.name)).split(sep).join('/'));
  }
  return out;
}

function notBuilt(reply: FastifyReply, assets: DashboardAssets): FastifyReply {
  const page = `<!doctype html><html><head><meta charset="utf-8"><title>Cohort dashboard not built</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The dashboard was not built</h1>
<p>This node serves the Cohort dashboard from the <code>@cohort/dashboard</code> package, whose files are missing
(<code>${assets.dir}</code>). Build it with:</p>
<pre>${assets.buildCommand}</pre>
<p>and reload this page; the node need not restart. The HTTP API works meanwhile: <a href="/v1/openapi.json">/v1/openapi.json</a>.</p>
</body></html>`;
  return reply.code(503).header('content-type', TYPES['.html']!).header('retry-after', '10').send(page);
}

/**
 * Serves the web dashboard at `/ui/` (static files only: every datum it
 * shows comes from the API, with the bearer token the page was given, so the
 * files themselves are open), `503` with how to build it when it was not,
 * and the two feeds only it needs:
 * - `GET /v1/admin/metrics/history?since=<ms>`: the node's metrics sampled
 *   every second, the last five minutes (see {@link MetricsHistory});
 * - `GET /v1/admin/events?after=<seq>`: the cluster events this node saw
 *   (leaders, members, replicas, snapshots), the last 500 (see {@link EventLog}).
 */
export function registerDashboardRoutes(app: FastifyInstance, o: DashboardRoutesOptions): void {
  const { assets } = o;
  // Listed once built (a file that is not listed is never read: no path escapes the directory).
  let files: Set<string> | undefined;
  const serve = async (path: string, reply: FastifyReply): Promise<FastifyReply> => {
    if (files === undefined) {
      if (!assets.isBuilt()) return notBuilt(reply, assets);
      files = await listFiles(assets.dir);
    }
    const file = files.has(path) ? path : 'index.html';
    let body: Buffer;
    try {
      body = await readFile(join(assets.dir, file));
    } catch {
      // Rebuilt or removed since it was listed: list again on the next request.
      files = undefined;
      return notBuilt(reply, assets);
    }
    // Bundles carry a content hash in their names; the page itself is asked again each time.
    const immutable = file.startsWith('assets/');
    return reply
      .header('content-type', TYPES[extname(file)] ?? 'application/octet-stream')
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .send(body);
  };
  app.get(UI_PREFIX, { schema: { hide: true } }, async (_req, reply) => reply.redirect(`${UI_PREFIX}/`));
  app.get<{ Params: { '*': string } }>(
    `${UI_PREFIX}/*`,
    { schema: { summary: 'The web dashboard (static files)' } },
    async (req, reply) => serve(req.params['*'] || 'index.html', reply),
  );

  app.get<{ Querystring: { since?: number } }>(
    '/v1/admin/metrics/history',
    {
      schema: {
        summary:
          "This node's metrics sampled every second, the last five minutes: requests/s, p50/p99 latency, proposals/s, commits/s, fsyncs/s and mean fsync ms",
        querystring: {
          type: 'object',
          properties: { since: { type: 'integer', minimum: 0, description: 'only samples taken after this (ms)' } },
          additionalProperties: false,
        },
      },
    },
    async (req) => ({ intervalMs: o.history.intervalMs, samples: o.history.samples(req.query.since) }),
  );
  app.get<{ Querystring: { after?: number } }>(
    '/v1/admin/events',
    {
      schema: {
        summary:
          'The cluster events this node saw, oldest first (leader changes, members joined, suspect, dead, replicas changed, snapshots); the last 500',
        querystring: {
          type: 'object',
          properties: {
            after: { type: 'integer', minimum: 0, description: 'only events after this sequence number' },
          },
          additionalProperties: false,
        },
      },
    },
    async (req) => o.events.since(req.query.after),
  );
}
