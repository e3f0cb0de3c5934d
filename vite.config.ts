/**
 * Builds the browser pages from client/ into dist/client, which the server serves at `/`.
 *
 * onnxruntime-web's default ESM entry (`ort.bundle.min.mjs`) inlines its emscripten glue with a literal
 * `new URL('ort-wasm-simd-threaded.jsep.wasm', import.meta.url)`, which Vite would copy into assets/ (28 MB).
 * The `onnxruntime-web-use-extern-wasm` export condition selects `ort.min.mjs` instead, which loads the glue
 * and the .wasm at run time from `ort.env.wasm.wasmPaths`; the server serves onnxruntime-web's dist/ at /ort/.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig, defaultClientConditions } from 'vite';

const clientDir = fileURLToPath(new URL('./client/', import.meta.url));
/** `npx vite` serves the pages with hot reload and forwards the rest to a running `tabgrid serve`. */
const devServer = process.env.TABGRID_SERVER ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: clientDir,
  base: '/',
  resolve: {
    conditions: ['onnxruntime-web-use-extern-wasm', ...defaultClientConditions],
  },
  server: {
    proxy: {
      '/api': devServer,
      '/models': devServer,
      '/ort': devServer,
      '/socket.io': { target: devServer, ws: true },
    },
  },
  build: {
    outDir: fileURLToPath(new URL('./dist/client/', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // onnxruntime-web alone is ~370 kB minified; it is one file and loads once per volunteer.
    chunkSizeWarningLimit: 1024,
    rolldownOptions: {
      // One entry per page; the widget and dashboard pages join here.
      input: {
        volunteer: fileURLToPath(new URL('./client/index.html', import.meta.url)),
      },
    },
  },
});
