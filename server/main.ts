/**
 * The composition root: builds the real store, blob folder, clock and logger from the config and
 * runs the app until SIGINT/SIGTERM.
 */
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { type ClusterDeps, createApp } from './app.js';
import { openSharedStore } from './cluster/shared-store.js';
import type { Store } from './store/store.js';
import type { Config } from './config.js';
import { systemClock } from './scheduler/clock.js';
import { BlobStore } from './store/blob-store.js';
import { SqliteStore } from './store/sqlite-store.js';

/** The data folder and what is in it are the server's alone: keys, models and data sets are private. */
function makePrivate(dataDir: string): void {
  // Everything this process creates from here on is owner-only (SQLite's -wal and -shm included).
  process.umask(0o077);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // A folder from an earlier version (or made by hand) may be open to others.
  fs.chmodSync(dataDir, 0o700);
}

/** SQLite in the data folder: one server is the whole network. */
function embeddedStore(dataDir: string): { store: Store; blobs: BlobStore; cluster?: ClusterDeps } {
  const dbFile = path.join(dataDir, 'tabgrid.sqlite');
  const store = new SqliteStore(dbFile);
  for (const f of [dbFile, `${dbFile}-wal`, `${dbFile}-shm`]) if (fs.existsSync(f)) fs.chmodSync(f, 0o600);
  return { store, blobs: new BlobStore(path.join(dataDir, 'blobs')) };
}

export async function runServer(config: Config): Promise<void> {
  const log = pino({ level: config.logLevel });
  const dataDir = path.resolve(config.dataDir);
  makePrivate(dataDir);
  let stopping = false;
  // The others took over what this server held: it may no longer commit, so it stops (a supervisor restarts it).
  const fenced = (err: Error) => {
    log.fatal({ err: err.message }, 'declared dead by the other servers; stopping');
    stopping = true;
    void app.stop().finally(() => process.exit(1));
  };
  const { store, blobs, cluster } = config.store ? await openSharedStore(config.store, dataDir, fenced) : embeddedStore(dataDir);
  const app = createApp({ store, blobs, clock: systemClock, log, config, cluster });
  const keyFile = path.join(dataDir, 'admin.key');
  const created = app.keys.ensureAdmin(dataDir, config.apiKey);
  const port = await app.start();
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  // The key itself is never printed: terminals are scrolled back, logged and shared in screenshots.
  process.stdout.write([
    '',
    `TabGrid is running at ${url}/`,
    `  volunteer page:  ${url}/`,
    `  data folder:     ${dataDir}`,
    config.apiKey
      ? '  admin API key:   from TABGRID_API_KEY'
      : `  admin API key:   in ${keyFile} (mode 0600${created ? ', created now' : ''})`,
    '',
  ].join('\n') + '\n');
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
