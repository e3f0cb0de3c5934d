/**
 * The real TabGrid server as `tabgrid serve` runs it (server/main.ts runServer, durable SQLite store,
 * config from the environment: PORT, TABGRID_DATA, TABGRID_API_KEY, LOG_LEVEL), minus the client build
 * that `serve` does first. Run as a child, so its CPU and memory are its own. When started with
 * --expose-gc it answers a `memory` request with its memory after a full collection.
 */
import { loadConfig } from '../../server/config.js';
import { runServer } from '../../server/main.js';
import { serveParent } from './proc.js';

await runServer(loadConfig({}));
serveParent({
  memory: () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const m = process.memoryUsage();
    return { collected: gc !== undefined, rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
  },
});
