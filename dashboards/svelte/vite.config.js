import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

// `npm run build` writes the standalone /ui page to dist/, which meshhook-stats serves at /ui/.
// Asset paths are relative (base './') so the page works under any prefix.
export default defineConfig({
  root: 'src/standalone',
  base: './',
  plugins: [svelte({ configFile: false })],
  build: {
    outDir: '../../dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
  },
  server: {
    // `npm run dev`: the API of a daemon on loopback (make run's default port).
    proxy: { '/api': process.env.MESHHOOK_API_URL ?? 'http://127.0.0.1:9470' },
  },
});
