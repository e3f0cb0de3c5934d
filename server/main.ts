/**
 * The composition root: builds the real store, blob folder, clock and logger from the config and
 * runs the app until SIGINT/SIGTERM.
 */
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { createApp } from './app.js';
import type { Config } from './config.js';
import { systemClock } from './scheduler/clock.js';
import { BlobStore } from './store/blob-store.js';
import { SqliteStore } from './store/sqlite-store.js';

export async function runServer(config: Config): Promise<void> {
  const log = pino({ level: config.logLevel });
  const dataDir = path.resolve(config.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const store = new SqliteStore(path.join(dataDir, 'tabgrid.sqlite'));
  const app = createApp({ store, blobs: new BlobStore(path.join(dataDir, 'blobs')), clock: systemClock, log, config });
  const created = app.keys.ensureAdmin(dataDir, config.apiKey);
  const port = await app.start();
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  process.stdout.write([
    '',
    `TabGrid is running at ${url}/`,
    `  volunteer page:  ${url}/`,
    `  data folder:     ${dataDir}`,
    created
      ? `  admin API key:   ${created}\n                   (shown once; saved to ${path.join(dataDir, 'admin.key')}, mode 0600)`
      : `  admin API key:   ${config.apiKey ? 'from TABGRID_API_KEY' : path.join(dataDir, 'admin.key')}`,
    '',
  ].join('\n') + '\n');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    await app.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
