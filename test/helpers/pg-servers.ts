/**
 * In-process servers sharing one throwaway PostgreSQL database, as `tabgrid serve --store` runs them: started before a
 * file's tests and closed after them (after the file's own afterAll hooks registered later: vitest runs them last
 * first). Call inside a describe; the array fills in beforeAll.
 */
import fs from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import type { Config } from '../../server/config.js';
import { type PgCluster, startPgCluster } from './pg-cluster.js';
import { type TestServer, startTestServer } from './server.js';

export function serversOnOneDatabase(count: number, config: Partial<Config>): TestServer[] {
  let pg: PgCluster;
  const servers: TestServer[] = [];
  beforeAll(async () => {
    pg = await startPgCluster();
    const db = pg.createDatabase('network');
    for (let i = 0; i < count; i++) servers.push(await startTestServer({ config: { store: db, clusterTickMs: 100, clusterTtlMs: 3000, ...config } }));
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    pg?.stop();
    for (const s of servers) fs.rmSync(s.dataDir, { recursive: true, force: true });
  });
  return servers;
}
