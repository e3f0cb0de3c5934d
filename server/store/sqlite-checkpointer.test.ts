import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { WalCheckpointer } from './sqlite-checkpointer.js';
import { SqliteStore } from './sqlite-store.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-ckpt-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Waits until `ok()` holds, or fails after `ms`. */
async function until(ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function walDb(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)');
  return db;
}

describe('WAL checkpoints on a thread of their own', () => {
  it('copies committed pages into the database file while the server\'s connection never checkpoints', async () => {
    const file = path.join(dir, 'copy.sqlite');
    const db = walDb(file);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const sizeBefore = fs.statSync(file).size;
    const c = new WalCheckpointer(db, file, 10);
    await until(() => c.running);
    // 300 pages: far below the 1,000 at which the connection would checkpoint for itself (SQLite's default).
    const insert = db.prepare('INSERT INTO t (data) VALUES (?)');
    db.transaction(() => { for (let i = 0; i < 300; i++) insert.run(Buffer.alloc(4000, i)); })();
    await until(() => fs.statSync(file).size > sizeBefore + 300 * 4000);
    c.close();
    db.close();
    expect(fs.existsSync(`${file}-wal`)).toBe(false);
    const again = new Database(file, { readonly: true });
    expect(again.prepare('SELECT COUNT(*) AS n FROM t').get()).toEqual({ n: 300 });
    again.close();
  });

  it('leaves the checkpoints to the server\'s connection again when the thread cannot open the database', async () => {
    const db = walDb(path.join(dir, 'alone.sqlite'));
    const c = new WalCheckpointer(db, path.join(dir, 'missing', 'nothing.sqlite'));
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(4000);
    await until(() => db.pragma('wal_autocheckpoint', { simple: true }) === 1000);
    expect(c.running).toBe(false);
    c.close();
    db.close();
  });

  it('starts for a store that keeps committing, and its close removes the log as before', async () => {
    const file = path.join(dir, 'store.sqlite');
    const s = new SqliteStore(file);
    for (let i = 0; i < 70; i++) {
      s.transaction(() => s.insertApiKey({ id: `k${i}`, keyHash: `h${i}`, name: `key ${i}`, admin: false, createdAt: i, revokedAt: null, weight: 1 }));
    }
    const c = (s as unknown as { checkpointer: WalCheckpointer | null }).checkpointer;
    expect(c).not.toBeNull();
    await until(() => c!.running);
    s.close();
    expect(c!.running).toBe(false);
    expect(fs.existsSync(`${file}-wal`)).toBe(false);
    const again = new SqliteStore(file);
    expect(again.findApiKey('h69')?.id).toBe('k69');
    again.close();
  });
});
