/**
 * The synchronous connection when the database goes away and comes back: calls fail while it is gone, the next
 * ones connect again, and a transaction begun before never finishes on the new connection (it would commit alone).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PgCluster, havePostgres, startPgCluster } from '../../../test/helpers/pg-cluster.js';
import { PgStore } from './pg-store.js';
import { PgSync } from './pg-sync.js';

describe.skipIf(!havePostgres())('PgSync across a database restart', () => {
  let cluster: PgCluster;
  let url: string;
  beforeAll(async () => {
    cluster = await startPgCluster();
    url = cluster.createDatabase('restart');
  });
  afterAll(() => cluster?.stop());

  /** The first call after a restart may fail (the old connection's end may not have been seen yet); the next works. */
  const reachable = (f: () => unknown) => {
    try { f(); } catch { /* the old connection, found dead now */ }
    return f();
  };

  it('connects again after the database restarted', () => {
    const db = new PgSync(url);
    try {
      expect(db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
      const first = db.connection;
      cluster.restart();
      expect(reachable(() => db.query('SELECT 2 AS two'))).toEqual([{ two: 2 }]);
      expect(db.connection).toBeGreaterThan(first);
    } finally {
      db.close();
    }
  });

  it('never finishes a transaction begun before the restart on the new connection', () => {
    const store = PgStore.open(url);
    try {
      const key = (id: string) => ({ id, keyHash: `h-${id}`, name: id, admin: false, createdAt: 1, revokedAt: null, weight: 1 });
      expect(() => store.transaction(() => {
        store.insertApiKey(key('before'));
        store.findApiKey('h-nothing'); // BEGIN and the insert go out
        cluster.restart();
        store.insertApiKey(key('after'));
        store.findApiKey('h-nothing');
      })).toThrow();
      expect(reachable(() => store.countApiKeys())).toBe(0);
      store.transaction(() => store.insertApiKey(key('later')));
      expect(store.listApiKeys().map((k) => k.id)).toEqual(['later']);
    } finally {
      store.close();
    }
  });

  it('runs its heartbeat in turn with the calls, never as a second query on the client while one runs', async () => {
    const db = new PgSync(url, 30_000, { text: 'SELECT 1', ms: 2 });
    const written: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      written.push(String(chunk));
      return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    try {
      for (let k = 0; k < 20; k++) db.query('SELECT pg_sleep(0.01)');
      // What the worker printed reaches this thread's stderr on a later turn.
      await new Promise((r) => setTimeout(r, 200));
      expect(written.join('')).not.toMatch(/already executing a query/);
    } finally {
      process.stderr.write = write;
      db.close();
    }
  });
});
