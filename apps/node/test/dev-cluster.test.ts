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
  it('starts three nodes, prints their addresses and the leader, and stops them all on SIGINT', async () => {
    // Node K listens on base + K - 1: each base starts a run of three free ports.
    const resp = await freeRun(3);
    const http = await freeRun(3);
    const peer = await freeRun(3);
    dev = spawn(
      process.execPath,
      [CLI, 'dev', '--dir', dir, '--resp-port', String(resp), '--http-port', String(http), '--peer-port', String(peer)],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    let out = '';
    dev.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    dev.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((r) => dev!.once('exit', (code) => r(code)));
    await poll('the leader line', 45_000, async () => (/leader: n[123]/.test(out) ? true : undefined));
    expect(out).toMatch(new RegExp(`n1 +RESP 127\\.0\\.0\\.1:${resp} +HTTP http://127\\.0\\.0\\.1:${http}`));
    expect(out).toMatch(new RegExp(`redis-cli -p ${resp} set a 1`));
    const put = await fetch(`http://127.0.0.1:${http + 1}/v1/kv/dev`, {
      method: 'PUT',
      body: JSON.stringify({ value: 'ok' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(put.status).toBe(200);

    dev.kill('SIGINT');
    expect(await exited).toBe(0);
    // Every node stopped: no HTTP port answers any more.
    for (const port of [http, http + 1, http + 2]) {
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    }
    for (const id of ['n1', 'n2', 'n3']) expect(existsSync(join(dir, id, 'cohort.db'))).toBe(true);
  }, 90_000);
});
