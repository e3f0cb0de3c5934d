/**
 * A real TabGrid server on port 0 with a fresh data folder, for integration and browser tests.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { type App, createApp } from '../../server/app.js';
import { type Config, configSchema } from '../../server/config.js';
import { type Clock, systemClock } from '../../server/scheduler/clock.js';
import { BlobStore } from '../../server/store/blob-store.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { openSharedStore } from '../../server/cluster/shared-store.js';

export interface TestServer {
  url: string;
  apiKey: string;
  dataDir: string;
  app: App;
  close(): Promise<void>;
}

/** `config.store` set (a postgres:// URL): the server shares that database with others, as `--store` makes it. */
export async function startTestServer(opts: { config?: Partial<Config>; clock?: Clock; dataDir?: string } = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-test-'));
  const config = configSchema.parse({ port: 0, host: '127.0.0.1', dataDir, logLevel: process.env.TEST_LOG_LEVEL ?? 'silent', ...opts.config });
  const { store, blobs, cluster } = config.store
    // Declared dead by the others: said on stderr (thrown from the member's timer, it would end the test process).
    ? await openSharedStore(config.store, dataDir, (err) => { process.stderr.write(`test server declared dead: ${err.message}\n`); })
    : { store: new SqliteStore(path.join(dataDir, 'tabgrid.sqlite')), blobs: new BlobStore(path.join(dataDir, 'blobs')), cluster: undefined };
  const app = createApp({ store, blobs, clock: opts.clock ?? systemClock, log: pino({ level: config.logLevel }), config, cluster });
  const created = app.keys.ensureAdmin(dataDir, config.apiKey);
  const apiKey = created ?? config.apiKey ?? fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8').trim();
  const port = await app.start();
  return {
    url: `http://127.0.0.1:${port}`, apiKey, dataDir, app,
    async close() {
      await app.stop();
      if (!opts.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
