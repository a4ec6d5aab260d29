import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, freeRun, poll } from './helpers/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'cohort-dev-'));
let dev: ReturnType<typeof spawn> | undefined;

afterAll(() => {
  // Children die with the launcher's process group.
  if (dev?.pid && dev.exitCode === null) process.kill(-dev.pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('cohort dev', () => {
  it('starts three nodes, prints the leader, survives a killed leader (printing the failover), restarts it, and stops them all on SIGINT', async () => {
    // Node K listens on base + K - 1: each base starts a run of three free ports.
    const resp = await freeRun(3);
    const http = await freeRun(3);
    const peer = await freeRun(3);
    dev = spawn(
      process.execPath,
      [CLI, 'dev', '--dir', dir, '--resp-port', String(resp), '--http-port', String(http), '--peer-port', String(peer)],
      { stdio: ['pipe', 'pipe', 'pipe'], detached: true },
    );
    let out = '';
    dev.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    dev.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((r) => dev!.once('exit', (code) => r(code)));
    // The leader line, then the hint under it: two writes, which may reach the pipe apart.
    await poll('the leader line and the hint', 45_000, async () =>
      /leader: n[123]/.test(out) && /try: /.test(out) ? true : undefined,
    );
    expect(out).toMatch(new RegExp(`n1 +RESP 127\\.0\\.0\\.1:${resp} +HTTP http://127\\.0\\.0\\.1:${http}`));
    expect(out).toMatch(new RegExp(`redis-cli -p ${resp} set a 1`));
    // The leader is known once a node reports it; the second node may still be opening its HTTP port.
    const put = await poll('a write through the second node', 15_000, async () => {
      try {
        return await fetch(`http://127.0.0.1:${http + 1}/v1/kv/dev`, {
          method: 'PUT',
          body: JSON.stringify({ value: 'ok' }),
          headers: { 'content-type': 'application/json' },
          signal: AbortSignal.timeout(5000),
        });
      } catch {
        return undefined;
      }
    });
    expect(put.status).toBe(200);

    // Kill the leader from the launcher's prompt: the others keep running and elect another.
    const first = /leader: (n[123]) \(term (\d+)\)/.exec(out)!;
    const old = first[1]!;
    dev.stdin?.write('kill leader\n');
    // The exit notice and the restart hint are two writes, which may reach the pipe apart.
    await poll('the exit notice and the restart hint', 15_000, async () =>
      new RegExp(`node ${old} exited \\(SIGKILL\\); n\\d, n\\d keep running`).test(out) &&
      out.includes(`restart it: type "restart ${old}"`)
        ? true
        : undefined,
    );
    const next = await poll('a new leader printed', 30_000, async () => {
      const m = /leader: (n[123]) \(term (\d+)\)/g;
      const all = [...out.matchAll(m)];
      const last = all[all.length - 1];
      return last && last[1] !== old ? last[1] : undefined;
    });
    expect(next).not.toBe(old);
    expect(dev.exitCode).toBe(null);
    dev.stdin?.write(`restart ${old}\n`);
    await poll('the restart notice', 10_000, async () =>
      out.includes(`restarted ${old} on its data`) ? true : undefined,
    );
    const oldHttp = http + Number(old.slice(1)) - 1;
    await poll(`${old} serving again`, 30_000, async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${oldHttp}/v1/kv/dev`, { signal: AbortSignal.timeout(2000) });
        return res.status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    });

    dev.kill('SIGINT');
    expect(await exited).toBe(0);
    // Every node stopped: no HTTP port answers any more.
    for (const port of [http, http + 1, http + 2]) {
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    }
    for (const id of ['n1', 'n2', 'n3']) expect(existsSync(join(dir, id, 'cohort.db'))).toBe(true);
  }, 90_000);
});
