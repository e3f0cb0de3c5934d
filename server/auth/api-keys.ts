/**
 * Researchers' API keys, stored as SHA-256 hashes. On first start the server makes an admin key,
 * writes it to <data>/admin.key (mode 0600) and prints it once; TABGRID_API_KEY overrides it.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ApiKeyRow, Store } from '../store/store.js';
import type { Clock } from '../scheduler/clock.js';

const hashKey = (key: string) => createHash('sha256').update(key).digest('hex');

export class ApiKeys {
  constructor(private readonly deps: { store: Store; clock: Clock }) {}

  /** Makes sure an admin key exists; returns a key that was created now (to print once), else null. */
  ensureAdmin(dataDir: string, override?: string): string | null {
    const { store } = this.deps;
    if (override) {
      if (!store.findApiKey(hashKey(override))) this.insert(override, 'admin (TABGRID_API_KEY)', true);
      return null;
    }
    const file = path.join(dataDir, 'admin.key');
    if (fs.existsSync(file)) {
      const key = fs.readFileSync(file, 'utf8').trim();
      if (store.findApiKey(hashKey(key))) return null;
    }
    const key = `tg_${randomBytes(24).toString('hex')}`;
    this.insert(key, 'admin', true);
    fs.writeFileSync(file, `${key}\n`, { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    return key;
  }

  /** Creates a researcher key; the key itself is returned once and never stored. */
  create(name: string, admin = false): { id: string; key: string } {
    const key = `tg_${randomBytes(24).toString('hex')}`;
    return { id: this.insert(key, name, admin).id, key };
  }

  verify(key: string): ApiKeyRow | undefined {
    return this.deps.store.findApiKey(hashKey(key));
  }

  private insert(key: string, name: string, admin: boolean): ApiKeyRow {
    const row = { id: `key-${randomBytes(6).toString('hex')}`, keyHash: hashKey(key), name, admin, createdAt: this.deps.clock.now(), revokedAt: null };
    this.deps.store.insertApiKey(row);
    return row;
  }
}
