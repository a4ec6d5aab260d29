import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProcCluster, type ProcNode, poll } from './helpers/processes.js';

// The dashboard in a real browser: Debian's chromium (installed by .ci/run), driven by playwright-core,
// which downloads nothing; under CI a missing browser fails the test, elsewhere it is skipped loudly.
process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = '1';
const CHROMIUM_INSTALL = 'apt-get install -y chromium';
function findChromium(): string | undefined {
  const candidates = [process.env.COHORT_CHROMIUM, 'chromium', 'chromium-browser'].filter(
    (c): c is string => c !== undefined && c !== '',
  );
  for (const c of candidates) {
    const found = spawnSync('sh', ['-c', `command -v "${c}"`], { encoding: 'utf8' }).stdout.trim();
    if (found !== '') return found;
  }
  return undefined;
}
const CHROMIUM = findChromium();
const RUN = CHROMIUM !== undefined || process.env.CI === 'true';
if (!RUN) {
  console.warn(
    `\n!!!!! dashboard: the browser test is SKIPPED — no chromium on PATH. Install it: \`${CHROMIUM_INSTALL}\` !!!!!\n`,
  );
}

/** Screenshots land here (gitignored): the package's test output. */
const OUT = fileURLToPath(new URL('../test-output/', import.meta.url));
const PARTITIONS = 4;

let cluster: ProcCluster | undefined;
let browser: Browser | undefined;
let page: Page;

interface PartitionView {
  partition: number;
  leader?: string;
  role?: string;
}

async function partitions(node: ProcNode): Promise<PartitionView[] | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.http}/v1/partitions?from=leaders`, {
      signal: AbortSignal.timeout(2000),
    });
    return res.ok ? ((await res.json()) as { partitions: PartitionView[] }).partitions : undefined;
  } catch {
    return undefined;
  }
}

/** Waits until `fn` holds in the page (evaluated there), failing with `what` and the page's text after `ms`. */
async function inPage(what: string, ms: number, fn: string): Promise<void> {
  try {
    await page.waitForFunction(fn, undefined, { timeout: ms, polling: 100 });
  } catch (err) {
    const text = await page.textContent('body').catch(() => '');
    // Whether the entry node still answers, to tell a slow page from a stuck node.
    const started = Date.now();
    const status = await fetch(`${page.url().replace(/\/ui\/.*$/, '')}/v1/members`, {
      signal: AbortSignal.timeout(5000),
    })
      .then(async (r) => `${r.status} in ${Date.now() - started} ms: ${await r.text()}`)
      .catch((e: Error) => `no answer in ${Date.now() - started} ms (${e.message})`);
    throw new Error(
      `the page did not show ${what} within ${ms} ms: ${(err as Error).message}\npage: ${text}\nGET /v1/members: ${status}`,
    );
  }
}

beforeAll(async () => {
  if (!RUN) return;
  expect(CHROMIUM, `chromium is required under CI: ${CHROMIUM_INSTALL}`).toBeDefined();
  cluster = await ProcCluster.create(3, [
    '--partitions',
    String(PARTITIONS),
    '--replicas',
    '3',
    '--heartbeat-ms',
    '50',
    '--election-timeout-ms',
    '300',
    // Short SWIM periods: a killed node is dead to the others within a few seconds.
    '--swim-probe-ms',
    '100',
  ]);
  cluster.startAll();
  const entry = cluster.nodes[0]!;
  await poll('every partition led', 30_000, async () => {
    const ps = await partitions(entry);
    return ps?.length === PARTITIONS && ps.every((p) => p.leader !== undefined && p.leader !== '') ? ps : undefined;
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM!,
    headless: true,
    // As root, Chromium runs only without its sandbox; /dev/shm may be small in containers.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
  mkdirSync(OUT, { recursive: true });
}, 60_000);

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail' || cluster === undefined) return;
  for (const n of cluster.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
});

afterAll(async () => {
  await browser?.close();
  await cluster?.killAll();
});

describe('the dashboard at /ui in a real browser (3 cohort processes, 4 partitions)', () => {
  it.runIf(RUN)(
    'lists the members, a leader per partition and live charts; after a leader is killed, shows it dead and a new leader',
    async () => {
      const c = cluster!;
      const entry = c.nodes[0]!;
      const base = `http://127.0.0.1:${entry.http}`;
      // Some traffic, so the request chart has something to draw. Right after the founding, leader balancing
      // (and an election when a node's event loop waits for a CPU) can leave a partition leaderless for a moment:
      // a put answered 503 then is retried, as a client would (a CI run met one).
      for (let i = 0; i < 20; i++) {
        const res = await poll(`PUT dash-${i} answered 200`, 10_000, async () => {
          const r = await fetch(`${base}/v1/kv/dash-${i}`, { method: 'PUT', body: `v${i}` });
          return r.status === 503 ? undefined : r;
        });
        expect(res.status).toBe(200);
      }
      await page.goto(`${base}/ui/`);

      await inPage(
        '3 members, all alive',
        15_000,
        `document.querySelectorAll('tr[data-member][data-state="alive"]').length === 3`,
      );
      await inPage(
        `a leader for each of the ${PARTITIONS} partitions`,
        15_000,
        `(() => { const rows = [...document.querySelectorAll('tr[data-partition]')];
           return rows.length === ${PARTITIONS} && rows.every((r) => r.getAttribute('data-leader')); })()`,
      );
      await inPage(
        'the meta group leader',
        10_000,
        `/meta leader \\w+/.test(document.querySelector('[data-testid="meta-leader"]')?.textContent ?? '')`,
      );
      await inPage(
        'charts with data points',
        15_000,
        `Number(document.querySelector('figure[data-chart="requests"]')?.getAttribute('data-points')) >= 2 &&
         document.querySelectorAll('figure[data-chart] canvas').length === 4`,
      );
      await page.screenshot({ path: `${OUT}dashboard.png`, fullPage: true });

      // Kill the leader of a partition the entry node does not lead, and watch the page follow. Leaders are
      // balanced every 2 s after the founding, which leaves them all on one node at first (a CI run met all four
      // still on the entry node here): wait for one elsewhere.
      const led = await poll(`a partition led by another node than ${entry.id}`, 20_000, async () =>
        (await partitions(entry))?.find((p) => p.leader !== undefined && p.leader !== '' && p.leader !== entry.id),
      );
      const victim = c.nodes.find((n) => n.id === led.leader)!;
      const killedAt = Date.now();
      await c.kill(victim);
      await inPage(
        `${victim.id} dead`,
        20_000,
        `document.querySelector('tr[data-member="${victim.id}"]')?.getAttribute('data-state') === 'dead'`,
      );
      await inPage(
        `a new leader for p${led.partition}, and no partition led by ${victim.id}`,
        15_000,
        `(() => { const rows = [...document.querySelectorAll('tr[data-partition]')];
           const l = (p) => rows.find((r) => r.getAttribute('data-partition') === String(p))?.getAttribute('data-leader');
           return rows.length === ${PARTITIONS} && rows.every((r) => r.getAttribute('data-leader') && r.getAttribute('data-leader') !== '${victim.id}')
             && l(${led.partition}) !== '${victim.id}'; })()`,
      );
      const followedMs = Date.now() - killedAt;
      // The events list tells the story: the member dead, the new leaders.
      await inPage(
        `an event saying ${victim.id} is dead`,
        5_000,
        `[...document.querySelectorAll('[data-testid="events"] li')].some((li) => li.textContent.includes('${victim.id} is dead'))`,
      );
      await page.screenshot({ path: `${OUT}dashboard-after-kill.png`, fullPage: true });
      console.log(`dashboard: showed ${victim.id} dead and new leaders ${followedMs} ms after the SIGKILL`);
      expect(followedMs).toBeLessThan(30_000);

      // An admin action from the page, behind its confirmation: preferably on a partition the entry node does
      // not lead (the node sends it on to the leader), else on one it leads; the survivor and the entry swap it.
      const survivor = c.nodes.find((n) => n !== entry && n !== victim)!;
      const now = (await partitions(entry))!;
      const remote = now.find((p) => p.leader === survivor.id);
      const mine = remote ?? now.find((p) => p.leader === entry.id)!;
      const target = remote ? entry : survivor;
      expect(mine, `a partition led by ${survivor.id} or ${entry.id}: ${JSON.stringify(now)}`).toBeDefined();
      const row = page.locator(`tr[data-partition="${mine.partition}"]`);
      await row.locator('select[aria-label="new leader"]').selectOption(target.id);
      await row.getByRole('button', { name: 'transfer leader' }).click();
      const dialog = page.locator('dialog[data-testid="confirm-dialog"]');
      await dialog.waitFor({ state: 'visible', timeout: 5000 });
      expect(await dialog.textContent()).toContain(`to ${target.id}`);
      await dialog.getByRole('button', { name: 'confirm' }).click();
      await dialog.locator('p.ok, p.bad').first().waitFor({ timeout: 15_000 });
      expect(await dialog.locator('p.bad').count(), (await dialog.textContent()) ?? '').toBe(0);
      await dialog.getByRole('button', { name: 'close' }).click();
      console.log(`dashboard: p${mine.partition} moved from ${mine.leader} to ${target.id} from ${entry.id}'s page`);
      await inPage(
        `p${mine.partition} led by ${target.id} after the transfer`,
        10_000,
        `document.querySelector('tr[data-partition="${mine.partition}"]')?.getAttribute('data-leader') === '${target.id}'`,
      );
    },
    90_000,
  );
});
