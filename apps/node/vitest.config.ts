import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    // The end-to-end files each run three node processes: one file at a time keeps a small machine responsive.
    fileParallelism: false,
  },
});
