// Where the built dashboard lies, for the node that serves it at /ui.
// Plain ESM, not bundled: `vite build` writes the page itself into dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The directory `vite build` writes the dashboard into (index.html and assets/). */
export const assetsDir = fileURLToPath(new URL('./dist/', import.meta.url));

/** Whether the dashboard was built: its index.html exists. */
export function isBuilt() {
  return existsSync(new URL('./dist/index.html', import.meta.url));
}

/** The command that builds it, for the page a node serves when it was not built. */
export const buildCommand = 'pnpm --filter @cohort/dashboard build (or npm run build at the repository root)';
