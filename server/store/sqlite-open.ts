/**
 * Opening the database file: the connection's settings, the upgrades from older schemas (each in one transaction),
 * incremental auto-vacuum (so deleted rows can give their pages back) and the schema itself.
 */
import Database from 'better-sqlite3';
import { MIGRATE_1_TO_2, MIGRATE_2_TO_3, MIGRATE_3_TO_4, MIGRATE_4_TO_5, SCHEMA, SCHEMA_VERSION } from './sqlite-schema.js';
import { enableIncrementalVacuum } from './sqlite-retention.js';

/** Opens (creating or upgrading) the database at `path`; ':memory:' gives a private in-memory one. */
export function openDatabase(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  // The hot rows and indexes (open tasks, live replicas) stay in memory: SQLite's default cache is 2 MiB.
  db.pragma('cache_size = -32768');
  // Each scheduler step is a savepoint inside the turn's transaction; its undo copies stay in memory, not a temp file.
  db.pragma('temp_store = MEMORY');
  // A big delete goes through the write-ahead log; the log is cut back to this size after a checkpoint.
  db.pragma(`journal_size_limit = ${64 * 2 ** 20}`);
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    db.close();
    throw new Error(`the database at ${path} is from a newer TabGrid (schema ${version}); upgrade TabGrid`);
  }
  if (version === 1) db.transaction(() => db.exec(MIGRATE_1_TO_2))();
  if (version === 1 || version === 2) db.transaction(() => db.exec(MIGRATE_2_TO_3))();
  if (version >= 1 && version <= 3) db.transaction(() => db.exec(MIGRATE_3_TO_4))();
  if (version >= 1 && version <= 4) db.transaction(() => db.exec(MIGRATE_4_TO_5))();
  // Deleted jobs give their pages back (SqliteStore.compact); SQLite's default keeps a file at its largest for ever.
  enableIncrementalVacuum(db);
  db.exec(SCHEMA);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
  return db;
}
