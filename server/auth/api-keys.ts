/**
 * Researchers' API keys, stored as SHA-256 hashes. On first start the server makes an admin key and writes
 * it to <data>/admin.key (mode 0600); the key itself is never printed or logged. TABGRID_API_KEY overrides it.
 * Keys can be listed and revoked; a revoked key is refused on its next call.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../../shared/errors.js';
import type { ApiKeyView, CreatedApiKey } from '../../shared/rest-types.js';
import type { ApiKeyRow, Store } from '../store/store.js';
import type { Clock } from '../scheduler/clock.js';

const hashKey = (key: string) => createHash('sha256').update(key).digest('hex');

const viewOf = (row: ApiKeyRow): ApiKeyView => ({
  id: row.id, name: row.name, admin: row.admin, createdAt: row.createdAt, revokedAt: row.revokedAt, weight: row.weight,
});

export class ApiKeys {
  constructor(private readonly deps: { store: Store; clock: Clock }) {}

  /**
   * Makes sure an admin key exists. Returns a key created now (written to <dataDir>/admin.key), else null.
   * A TABGRID_API_KEY that was revoked is refused: the server would otherwise start with a key that cannot call it.
   */
  ensureAdmin(dataDir: string, override?: string): string | null {
    const { store } = this.deps;
    if (override) {
      const hash = hashKey(override);
      if (store.findApiKey(hash)) return null;
      if (store.listApiKeys().some((k) => k.keyHash === hash)) {
        throw new Error('TABGRID_API_KEY names a key that was revoked; choose another key (or unset it to use <data>/admin.key)');
      }
      this.insert(override, 'admin (TABGRID_API_KEY)', true);
      return null;
    }
    const file = path.join(dataDir, 'admin.key');
    if (fs.existsSync(file)) {
      const key = fs.readFileSync(file, 'utf8').trim();
      if (store.findApiKey(hashKey(key))) {
        fs.chmodSync(file, 0o600);
        return null;
      }
    }
    const key = newKey();
    this.insert(key, 'admin', true);
    // Written to a fresh file and renamed over, so a key file left readable by others is replaced, not reused.
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, `${key}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
    return key;
  }

  /** Creates a key; the key itself is returned once and never stored. */
  create(name: string, admin = false): CreatedApiKey {
    const key = newKey();
    return { ...viewOf(this.insert(key, name, admin)), key };
  }

  /** The key's record, unless it is unknown or revoked. */
  verify(key: string): ApiKeyRow | undefined {
    return this.deps.store.findApiKey(hashKey(key));
  }

  /** Sets a key's weight in the fair share between researchers' running jobs. */
  setWeight(id: string, weight: number): ApiKeyView {
    const { store } = this.deps;
    if (!store.setApiKeyWeight(id, weight)) throw new AppError('NOT_FOUND', `no key ${id}`);
    return viewOf(store.listApiKeys().find((k) => k.id === id)!);
  }

  /** Every key, revoked ones included, oldest first. */
  list(): ApiKeyView[] {
    return this.deps.store.listApiKeys().map(viewOf);
  }

  /** Revokes a key at once. The last admin key that is not revoked stays: without it nobody could make keys. */
  revoke(id: string): ApiKeyView {
    const { store, clock } = this.deps;
    return store.transaction(() => {
      const keys = store.listApiKeys();
      const row = keys.find((k) => k.id === id);
      if (!row) throw new AppError('NOT_FOUND', `no API key ${id}`);
      if (row.revokedAt !== null) throw new AppError('CONFLICT', `key ${id} was revoked already`);
      if (row.admin && !keys.some((k) => k.admin && k.revokedAt === null && k.id !== id)) {
        throw new AppError('CONFLICT', `key ${id} is the last admin key; create another admin key before revoking it`);
      }
      const at = clock.now();
      store.revokeApiKey(id, at);
      return viewOf({ ...row, revokedAt: at });
    });
  }

  private insert(key: string, name: string, admin: boolean): ApiKeyRow {
    const row = { id: `key-${randomBytes(6).toString('hex')}`, keyHash: hashKey(key), name, admin, createdAt: this.deps.clock.now(), revokedAt: null, weight: 1 };
    this.deps.store.insertApiKey(row);
    return row;
  }
}

const newKey = () => `tg_${randomBytes(24).toString('hex')}`;
