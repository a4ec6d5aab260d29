import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from './errors.js';

/**
 * Makes sure `dir` exists (creating it, mode 0700, if missing) and that this
 * process can write there, by creating and removing a probe file.
 * Throws a ConfigError naming the directory and the fix.
 */
export function checkDataDirWritable(dir: string, field = 'node.dataDir'): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ConfigError(
      `${field}: cannot create '${dir}' (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ` +
        'choose a directory this user may create, or create it and grant write access',
    );
  }
  const probe = join(dir, `.write-probe-${process.pid}`);
  try {
    writeFileSync(probe, 'ok');
    rmSync(probe, { force: true });
  } catch (err) {
    throw new ConfigError(
      `${field}: '${dir}' is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ` +
        'grant this user write access or choose another directory',
    );
  }
}
