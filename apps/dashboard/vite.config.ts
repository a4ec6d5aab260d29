import { defineConfig } from 'vite';

// Served by every node at /ui: relative asset URLs, one small bundle, no CDN.
export default defineConfig({
  base: './',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, assetsDir: 'assets', sourcemap: false, target: 'es2022' },
});
