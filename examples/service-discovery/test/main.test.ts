import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runDiscovery } from '../src/main.ts';

const expected = [
  'api: http://10.0.0.11:8080 http://10.0.0.12:8080',
  'api-2 left; api: http://10.0.0.11:8080',
  'api-1 failed; api: (none)',
];

describe('the service-discovery example', () => {
  it('finds both api instances, then follows a graceful leave and a crash', async () => {
    expect(await runDiscovery(10_000)).toEqual(expected);
  });

  it('runs as a script with node and exits', async () => {
    const file = fileURLToPath(new URL('../src/main.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, [file], { timeout: 20_000 });
    expect(stdout.trim().split('\n')).toEqual(expected);
  });
});
