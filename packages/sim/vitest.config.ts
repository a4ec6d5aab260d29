import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    // The seed batches are CPU-bound and split over two files: run them side by side on two cores.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
