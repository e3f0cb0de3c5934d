import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { SqliteStore } from './sqlite-store.js';
import { storeContract } from './store-contract.js';

storeContract('SQLite in memory', () => new SqliteStore(':memory:'));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-store-'));
let n = 0;
const files = new Map<SqliteStore, string>();
storeContract('SQLite file (WAL)', () => {
  const file = path.join(dir, `s${++n}.sqlite`);
  const s = new SqliteStore(file);
  files.set(s, file);
  return s;
}, (s) => {
  const file = files.get(s as SqliteStore)!;
  s.close();
  return new SqliteStore(file);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
