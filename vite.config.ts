/**
 * Builds the browser pages from client/ into dist/client, which the server serves: the volunteer page
 * (`/`), the widget's frame (`/widget/frame`), the researchers' dashboard (`/dashboard`), plus the widget's
 * loader `widget.js` and the files in public/ (copied as they are).
 *
 * onnxruntime-web's default ESM entry (`ort.bundle.min.mjs`) inlines its emscripten glue with a literal
 * `new URL('ort-wasm-simd-threaded.jsep.wasm', import.meta.url)`, which Vite would copy into assets/ (28 MB).
 * The `onnxruntime-web-use-extern-wasm` export condition selects `ort.min.mjs` instead (and `ort.wasm.min.mjs` for
 * `onnxruntime-web/wasm`, the CPU-only build the inference worker loads first, see client/runtime/ort-builds.ts),
 * which loads the glue and the .wasm at run time from `ort.env.wasm.wasmPaths`; the server serves onnxruntime-web's
 * dist/ at ORT_PATH (shared/ort-path.ts: /ort/<version>/).
 *
 * widget.js runs as a classic script on other people's pages, so it is built on its own as one IIFE with a
 * fixed name (no hash, no chunks, no module syntax, no top-level names).
 */
import { fileURLToPath } from 'node:url';
import { type Plugin, build, defaultClientConditions, defineConfig } from 'vite';

const page = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const clientDir = page('./client/');
const outDir = page('./dist/client/');
/** `npx vite` serves the pages with hot reload and forwards the rest to a running `tabgrid serve`. */
const devServer = process.env.TABGRID_SERVER ?? 'http://127.0.0.1:8080';

/** After the pages are written, builds client/widget/loader.ts into dist/client/widget.js. */
function widgetLoader(): Plugin {
  return {
    name: 'tabgrid-widget-loader',
    apply: 'build',
    async closeBundle() {
      await build({
        configFile: false,
        logLevel: 'warn',
        publicDir: false,
        build: {
          outDir,
          emptyOutDir: false,
          target: 'es2020',
          minify: true,
          lib: { entry: page('./client/widget/loader.ts'), formats: ['iife'], name: 'TabGridLoader', fileName: () => 'widget.js' },
        },
      });
    },
  };
}

export default defineConfig({
  root: clientDir,
  base: '/',
  publicDir: page('./public/'),
  resolve: {
    conditions: ['onnxruntime-web-use-extern-wasm', ...defaultClientConditions],
  },
  plugins: [widgetLoader()],
  // The inference worker (client/runtime/inference-worker.ts) is a module worker: onnxruntime-web imports its
  // WebAssembly glue from ORT_PATH at run time, which needs ES module syntax.
  worker: { format: 'es' },
  server: {
    proxy: {
      '/api': devServer,
      '/models': devServer,
      '/ort': devServer,
      // The loader is built, not served by the dev server; the frame it points at comes from the server too.
      '/widget.js': devServer,
      '/widget/frame': devServer,
      '/socket.io': { target: devServer, ws: true },
    },
  },
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2022',
    // onnxruntime-web alone is ~370 kB minified; it is one file and loads once per volunteer.
    chunkSizeWarningLimit: 1024,
    rolldownOptions: {
      input: {
        volunteer: page('./client/index.html'),
        widget: page('./client/widget/frame.html'),
        dashboard: page('./client/dashboard/index.html'),
      },
    },
  },
});
