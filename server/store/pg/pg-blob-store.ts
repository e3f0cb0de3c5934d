/**
 * Blobs kept in PostgreSQL, so every server on one database can serve every model and data set without a shared
 * filesystem. The bytes live in `blob_chunks` (1 MiB rows) under a `blobs` row written last in the same transaction:
 * a `blobs` row means all its chunks are there. The local folder of the BlobStore underneath is only a cache: a blob
 * missing there is fetched into it on first use (to a temp file, then renamed, so a reader never sees half a file),
 * and the least recently used files are dropped from it past `cacheBytes`, never from PostgreSQL.
 *
 * The synchronous methods (put, pathOf, read, readRange, has, remove) use a synchronous connection, as the callers
 * are synchronous; putStream uploads through an async pool instead, so a large upload does not hold the event loop.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import pg from 'pg';
import { BlobStore, DIR_MODE, FILE_MODE } from '../blob-store.js';
import { PgSync, type Statement } from './pg-sync.js';

/** Rows of `blob_chunks` hold this many bytes (the last one of a blob fewer). */
export const PG_CHUNK = 1 << 20;
const DEFAULT_CACHE_BYTES = 2 * 2 ** 30;
const HASH = /^[0-9a-f]{64}$/;
const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';
const INSERT_CHUNK = 'INSERT INTO blob_chunks (hash, idx, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING';
const INSERT_BLOB = `INSERT INTO blobs (hash, size, chunks, created_at) VALUES ($1, $2, $3, ${NOW_MS}) ON CONFLICT DO NOTHING`;

export interface PgBlobStoreOptions {
  /** The database. The store opens its own connections: its transactions span several calls. */
  url: string;
  /** The local folder is kept under this many bytes (2 GiB by default); a single larger blob is kept alone. */
  cacheBytes?: number;
}

interface CachedFile {
  size: number;
  /** Whether PostgreSQL holds it too: a file only here (from a folder-only BlobStore before) is never evicted. */
  inPg: boolean;
}

const chunkCount = (size: number) => Math.ceil(size / PG_CHUNK);

export class PgBlobStore extends BlobStore {
  private readonly db: PgSync;
  private readonly url: string;
  private pool: pg.Pool | undefined;
  private readonly cacheBytes: number;
  /** The files in the local folder, least recently used first. */
  private readonly cached = new Map<string, CachedFile>();
  private cachedTotal = 0;

  constructor(dir: string, opts: PgBlobStoreOptions) {
    super(dir);
    this.url = opts.url;
    this.cacheBytes = opts.cacheBytes ?? DEFAULT_CACHE_BYTES;
    this.db = new PgSync(opts.url);
    this.scan();
    this.evict();
  }

  /** The blob's local file, fetched from PostgreSQL first when missing; an unknown hash gives a path with no file. */
  override pathOf(hash: string): string {
    this.ensureLocal(hash);
    return this.localPath(hash);
  }

  override has(hash: string): boolean {
    return this.cached.has(hash) || this.inPg(hash);
  }

  override read(hash: string): Buffer {
    this.ensureLocal(hash);
    return super.read(hash);
  }

  override readRange(hash: string, offset: number, length: number): Buffer {
    this.ensureLocal(hash);
    return super.readRange(hash, offset, length);
  }

  /** Stores bytes locally and in PostgreSQL and returns their SHA-256; storing the same bytes twice is a no-op. */
  override put(bytes: Uint8Array): string {
    const hash = super.put(bytes);
    const had = this.cached.has(hash);
    this.track(hash, bytes.byteLength, false);
    try {
      if (!this.inPg(hash)) this.insertSync(hash, bytes);
    } catch (err) {
      if (!had) this.dropLocal(hash);
      throw err;
    }
    this.cached.get(hash)!.inPg = true;
    this.evict(hash);
    return hash;
  }

  /**
   * Stores a stream locally (as BlobStore does: streamed, hashed on the way) and then in PostgreSQL, read back from
   * the local file a chunk at a time, so memory stays bounded. Past `maxBytes`: TooLargeError, and nothing in either.
   */
  override async putStream(source: Readable, maxBytes: number): Promise<{ hash: string; size: number }> {
    const stored = await super.putStream(source, maxBytes);
    const { hash, size } = stored;
    const had = this.cached.has(hash);
    this.track(hash, size, false);
    let fd: number | undefined;
    try {
      // Opened before any wait: an eviction during the upload unlinks the file, and the open file stays readable.
      fd = fs.openSync(this.localPath(hash), 'r');
      if (!(await this.inPgAsync(hash))) await this.insertFromFile(hash, size, fd);
    } catch (err) {
      if (!had) this.dropLocal(hash);
      throw err;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
    const entry = this.cached.get(hash);
    if (entry) entry.inPg = true;
    this.evict(hash);
    return stored;
  }

  /** Removes the blob from PostgreSQL and from this server's folder (other servers' caches keep theirs). */
  override remove(hash: string): void {
    this.transaction([
      { text: 'DELETE FROM blobs WHERE hash = $1', values: [hash] },
      { text: 'DELETE FROM blob_chunks WHERE hash = $1', values: [hash] },
    ]);
    this.dropLocal(hash);
  }

  override close(): void {
    super.close();
    this.db.close();
    const pool = this.pool;
    this.pool = undefined;
    void pool?.end().catch(() => {});
  }

  private inPg(hash: string): boolean {
    return this.db.query('SELECT 1 FROM blobs WHERE hash = $1', [hash]).length > 0;
  }

  private async inPgAsync(hash: string): Promise<boolean> {
    const r = await this.pgPool().query('SELECT 1 FROM blobs WHERE hash = $1', [hash]);
    return r.rowCount! > 0;
  }

  /** Runs statements in one transaction on the synchronous connection, rolled back when one fails. */
  private transaction(statements: Statement[]): void {
    try {
      this.db.run([{ text: 'BEGIN' }, ...statements, { text: 'COMMIT' }]);
    } catch (err) {
      try { this.db.query('ROLLBACK'); } catch { /* the connection is gone; the transaction with it */ }
      throw err;
    }
  }

  /**
   * Writes the chunks and then the `blobs` row in one transaction, a round trip per chunk so no more than one chunk
   * is copied to the connection's thread at a time. Synchronous code: nothing else can use the connection meanwhile.
   */
  private insertSync(hash: string, bytes: Uint8Array): void {
    const chunks = chunkCount(bytes.byteLength);
    try {
      this.db.query('BEGIN');
      for (let idx = 0; idx < chunks; idx++) {
        // A copy: a view would carry its whole underlying buffer to the worker thread each time.
        const data = new Uint8Array(bytes.subarray(idx * PG_CHUNK, (idx + 1) * PG_CHUNK));
        this.db.query(INSERT_CHUNK, [hash, idx, data]);
      }
      this.db.run([{ text: INSERT_BLOB, values: [hash, bytes.byteLength, chunks] }, { text: 'COMMIT' }]);
    } catch (err) {
      try { this.db.query('ROLLBACK'); } catch { /* the connection is gone; the transaction with it */ }
      throw err;
    }
  }

  /** As insertSync, from an open file, on a pooled connection of its own so the event loop runs between chunks. */
  private async insertFromFile(hash: string, size: number, fd: number): Promise<void> {
    const client = await this.pgPool().connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const buf = Buffer.allocUnsafe(PG_CHUNK);
      const chunks = chunkCount(size);
      for (let idx = 0; idx < chunks; idx++) {
        const n = readFull(fd, buf, idx * PG_CHUNK);
        if (n !== Math.min(PG_CHUNK, size - idx * PG_CHUNK)) throw new Error(`blob ${hash} changed on disk while stored`);
        // The buffer is reused only once this query is done with it.
        await client.query(INSERT_CHUNK, [hash, idx, buf.subarray(0, n)]);
      }
      await client.query(INSERT_BLOB, [hash, size, chunks]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => { broken = e; });
      throw err;
    } finally {
      // A connection that could not roll back is discarded, not handed to the next upload mid-transaction.
      client.release(broken);
    }
  }

  private pgPool(): pg.Pool {
    if (!this.pool) {
      this.pool = new pg.Pool({ connectionString: this.url, max: 4 });
      // An idle connection that drops is replaced on the next connect; without a listener it would end the process.
      this.pool.on('error', () => {});
      // A checked-out connection the database drops reports on the client: its query fails, the process goes on.
      this.pool.on('connect', (client) => { client.on('error', () => {}); });
    }
    return this.pool;
  }

  /** Makes sure the blob's file is in the folder, fetching it from PostgreSQL; false when no one has it. */
  private ensureLocal(hash: string): boolean {
    const entry = this.cached.get(hash);
    if (entry) {
      this.cached.delete(hash);
      this.cached.set(hash, entry);
      return true;
    }
    return this.fetch(hash);
  }

  /** Copies a blob from PostgreSQL into the folder a chunk at a time, checked against its hash before it is renamed in. */
  private fetch(hash: string): boolean {
    const row = this.db.query<{ size: number; chunks: number }>('SELECT size, chunks FROM blobs WHERE hash = $1', [hash])[0];
    if (!row) return false;
    const file = this.localPath(hash);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: DIR_MODE });
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    const fd = fs.openSync(tmp, 'wx', FILE_MODE);
    try {
      const hasher = createHash('sha256');
      let size = 0;
      for (let idx = 0; idx < row.chunks; idx++) {
        const chunk = this.db.query<{ data: Uint8Array }>('SELECT data FROM blob_chunks WHERE hash = $1 AND idx = $2', [hash, idx])[0];
        if (!chunk) throw new Error(`blob ${hash} has lost chunk ${idx} in PostgreSQL`);
        writeFull(fd, chunk.data);
        hasher.update(chunk.data);
        size += chunk.data.byteLength;
      }
      if (size !== row.size || hasher.digest('hex') !== hash) throw new Error(`blob ${hash} in PostgreSQL does not match its hash`);
      fs.closeSync(fd);
      fs.renameSync(tmp, file);
    } catch (err) {
      try { fs.closeSync(fd); } catch { /* closed before the rename failed */ }
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    this.track(hash, row.size, true);
    this.evict(hash);
    return true;
  }

  /** Notes a file in the folder as the most recently used. */
  private track(hash: string, size: number, inPg: boolean): void {
    const entry = this.cached.get(hash);
    if (entry) this.cached.delete(hash);
    else this.cachedTotal += size;
    this.cached.set(hash, entry ?? { size, inPg });
  }

  /** Drops the blob from the folder only (BlobStore.remove: closes its open file and forgets its cached chunks). */
  private dropLocal(hash: string): void {
    super.remove(hash);
    const entry = this.cached.get(hash);
    if (!entry) return;
    this.cached.delete(hash);
    this.cachedTotal -= entry.size;
  }

  /** Drops the least recently used files, never `keep` (the one just used), until the folder fits its limit. */
  private evict(keep?: string): void {
    for (const [hash, entry] of this.cached) {
      if (this.cachedTotal <= this.cacheBytes) return;
      if (hash !== keep && entry.inPg) this.dropLocal(hash);
    }
  }

  /** Takes stock of the folder a server left behind, oldest first (by modification time: reads leave no trace). */
  private scan(): void {
    const found: { hash: string; size: number; at: number }[] = [];
    for (const sub of fs.readdirSync(this.dir, { withFileTypes: true })) {
      if (!sub.isDirectory() || !/^[0-9a-f]{2}$/.test(sub.name)) continue;
      for (const name of fs.readdirSync(path.join(this.dir, sub.name))) {
        if (!HASH.test(name)) continue;
        const st = fs.statSync(path.join(this.dir, sub.name, name));
        found.push({ hash: name, size: st.size, at: st.mtimeMs });
      }
    }
    if (found.length === 0) return;
    const inPg = new Set(this.db.query<{ hash: string }>('SELECT hash FROM blobs WHERE hash = ANY($1::text[])', [found.map((f) => f.hash)]).map((r) => r.hash));
    found.sort((a, b) => a.at - b.at);
    for (const f of found) this.track(f.hash, f.size, inPg.has(f.hash));
  }
}

function readFull(fd: number, buf: Buffer, position: number): number {
  let got = 0;
  while (got < buf.byteLength) {
    const n = fs.readSync(fd, buf, got, buf.byteLength - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function writeFull(fd: number, data: Uint8Array): void {
  for (let at = 0; at < data.byteLength;) at += fs.writeSync(fd, data, at, data.byteLength - at);
}
