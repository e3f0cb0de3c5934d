/**
 * What a server on a shared PostgreSQL database is built from: the store (its write transactions fenced by this
 * server's row, registered here before anything is written), the blobs (the data folder caches them), the claims
 * of slices, and socket.io's adapter for messages between servers.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { ClusterDeps } from '../app.js';
import type { BlobStore } from '../store/blob-store.js';
import { PgBlobStore } from '../store/pg/pg-blob-store.js';
import { PgClaims } from '../store/pg/pg-claims.js';
import { pgIoAdapter } from '../store/pg/pg-io-adapter.js';
import { PgStore } from '../store/pg/pg-store.js';
import { PgSync } from '../store/pg/pg-sync.js';
import type { Store } from '../store/store.js';

/** PostgreSQL shared with other servers: the state, the blobs (the data folder caches them) and messages between them. */
export async function openSharedStore(url: string, dataDir: string, fenced: (err: Error) => void): Promise<{ store: Store; blobs: BlobStore; cluster: ClusterDeps }> {
  const serverId = randomUUID();
  const store = PgStore.open(url, { fence: serverId });
  // Registered before anything is written: every write transaction of this server is fenced by its row.
  // The claims' connection beats on its own thread too: a server busy with a long unit of work stays alive.
  const sync = new PgSync(url, undefined, { text: 'SELECT tabgrid_fence($1)', values: [serverId], ms: 500 });
  const claims = new PgClaims(sync, serverId);
  claims.register(null);
  const blobs = new PgBlobStore(path.join(dataDir, 'blobs'), { url });
  const io = await pgIoAdapter(url);
  return { store, blobs, cluster: { claims, adapter: io.adapter, fenced, close: async () => { await io.close(); sync.close(); } } };
}
