import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { havePostgres, startPgCluster, type PgCluster } from '../../../test/helpers/pg-cluster.js';
import { BlobStore, sha256, TooLargeError } from '../blob-store.js';
import { PgBlobStore } from './pg-blob-store.js';
import { migrate } from './pg-schema.js';
import { PgSync } from './pg-sync.js';

const MiB = 2 ** 20;

let cluster: PgCluster;
let dbs = 0;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-pgblobs-'));
const opened: { close(): void }[] = [];

/** A fresh database with the schema (or only the statements given), and a connection to look into it. */
function database(ddl?: string[]): { url: string; sql: PgSync } {
  const url = cluster.createDatabase(`blobs${++dbs}`);
  const sql = new PgSync(url);
  opened.push(sql);
  if (ddl) sql.run(ddl.map((text) => ({ text })));
  else migrate(sql);
  return { url, sql };
}

function store(url: string, opts: { cacheBytes?: number; dir?: string } = {}): PgBlobStore {
  const s = new PgBlobStore(opts.dir ?? fs.mkdtempSync(path.join(tmp, 'dir-')), { url, cacheBytes: opts.cacheBytes });
  opened.push(s);
  return s;
}

/** Every file under a folder, temp files included. */
function filesIn(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
}

/** A stream of `bytes` in pieces of a size unrelated to the 1 MiB chunks. */
function streamOf(bytes: Buffer, piece = 300_001): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += piece) pieces.push(bytes.subarray(at, at + piece));
  return Readable.from(pieces);
}

const dirOf = (s: PgBlobStore) => (s as unknown as { dir: string }).dir;
const isLocal = (s: PgBlobStore, hash: string) => fs.existsSync(path.join(dirOf(s), hash.slice(0, 2), hash));
const count = (sql: PgSync, table: string) => Number(sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)[0]!.n);

describe.skipIf(!havePostgres())('PgBlobStore', () => {
  beforeAll(async () => { cluster = await startPgCluster(); }, 60_000);
  afterEach(() => { for (const o of opened.splice(0)) o.close(); });
  afterAll(() => {
    cluster?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('serves a blob put on one server from another with an empty folder: read, range, pathOf', async () => {
    const { url } = database();
    const a = store(url);
    const b = store(url);
    const big = randomBytes(2.5 * MiB + 11);
    const streamed = randomBytes(MiB + 5);
    const hash = a.put(big);
    const { hash: sHash } = await a.putStream(streamOf(streamed), 4 * MiB);
    const empty = a.put(new Uint8Array(0));
    expect(filesIn(dirOf(b))).toEqual([]);

    expect(b.has(hash)).toBe(true);
    expect(b.readRange(hash, MiB - 7, MiB + 20).equals(big.subarray(MiB - 7, 2 * MiB + 13))).toBe(true);
    expect(b.readRange(hash, big.length - 3, 3).equals(big.subarray(-3))).toBe(true);
    expect(b.read(hash).equals(big)).toBe(true);
    expect(fs.readFileSync(b.pathOf(sHash)).equals(streamed)).toBe(true);
    expect(b.read(empty).length).toBe(0);
    // Fetched into B's own folder, under the names BlobStore gives, and nothing half-written left beside them.
    expect(filesIn(dirOf(b)).sort()).toEqual([hash, sHash, empty].sort());
    expect(b.pathOf(hash)).toBe(path.join(dirOf(b), hash.slice(0, 2), hash));
  });

  it('answers an unknown hash as BlobStore does: a path with no file, has false, read throws', () => {
    const { url } = database();
    const b = store(url);
    const unknown = sha256(randomBytes(8));
    const plain = new BlobStore(dirOf(b));
    expect(b.pathOf(unknown)).toBe(plain.pathOf(unknown));
    expect(fs.existsSync(b.pathOf(unknown))).toBe(false);
    expect(b.has(unknown)).toBe(false);
    expect(() => b.read(unknown)).toThrow();
    expect(() => b.readRange(unknown, 0, 4)).toThrow();
  });

  it('keeps a 5 MiB stream as five 1 MiB chunks under one blobs row, stored once however often it is put', async () => {
    const { url, sql } = database();
    const a = store(url);
    const b = store(url);
    const bytes = randomBytes(5 * MiB);
    const { hash, size } = await a.putStream(streamOf(bytes), 8 * MiB);
    expect(size).toBe(5 * MiB);
    expect(sql.query('SELECT size::int AS size, chunks FROM blobs WHERE hash = $1', [hash])).toEqual([{ size: 5 * MiB, chunks: 5 }]);
    const rows = sql.query<{ idx: number; data: Uint8Array }>('SELECT idx, data FROM blob_chunks WHERE hash = $1 ORDER BY idx', [hash]);
    expect(rows.map((r) => [r.idx, r.data.byteLength])).toEqual([0, 1, 2, 3, 4].map((i) => [i, MiB]));
    expect(Buffer.concat(rows.map((r) => r.data)).equals(bytes)).toBe(true);

    await a.putStream(streamOf(bytes), 8 * MiB);
    expect(b.put(bytes)).toBe(hash);
    expect(count(sql, 'blobs')).toBe(1);
    expect(count(sql, 'blob_chunks')).toBe(5);
  });

  it('leaves nothing behind, in the folder or in PostgreSQL, for a stream past maxBytes', async () => {
    const { url, sql } = database();
    const a = store(url);
    await expect(a.putStream(streamOf(randomBytes(3 * MiB)), 2 * MiB)).rejects.toBeInstanceOf(TooLargeError);
    expect(filesIn(dirOf(a))).toEqual([]);
    expect(count(sql, 'blobs')).toBe(0);
    expect(count(sql, 'blob_chunks')).toBe(0);
  });

  it('keeps no local file when PostgreSQL refuses the blob, so no server believes it stored', async () => {
    // No blob_chunks table: the first write fails, after the blob was written to the folder.
    const { url } = database(['CREATE TABLE blobs (hash text PRIMARY KEY, size bigint NOT NULL, chunks integer NOT NULL, created_at bigint NOT NULL)']);
    const a = store(url);
    expect(() => a.put(randomBytes(1000))).toThrow(/blob_chunks/);
    await expect(a.putStream(streamOf(randomBytes(2 * MiB)), 4 * MiB)).rejects.toThrow(/blob_chunks/);
    expect(filesIn(dirOf(a))).toEqual([]);
  });

  it('removes a blob from PostgreSQL and from the folder', () => {
    const { url, sql } = database();
    const a = store(url);
    const keep = a.put(randomBytes(100));
    const hash = a.put(randomBytes(MiB + 1));
    a.remove(hash);
    expect(isLocal(a, hash)).toBe(false);
    expect(a.has(hash)).toBe(false);
    expect(sql.query('SELECT hash FROM blobs')).toEqual([{ hash: keep }]);
    expect(sql.query('SELECT DISTINCT hash FROM blob_chunks')).toEqual([{ hash: keep }]);
    const c = store(url);
    expect(c.has(hash)).toBe(false);
    expect(fs.existsSync(c.pathOf(hash))).toBe(false);
    expect(c.read(keep).length).toBe(100);
  });

  it('drops the least recently used files past cacheBytes, and fetches them again when asked', () => {
    const { url, sql } = database();
    const a = store(url, { cacheBytes: 3 * MiB });
    const bytes = [0, 1, 2, 3].map(() => randomBytes(MiB));
    const [h0, h1, h2, h3] = bytes.map((b) => a.put(b)) as [string, string, string, string];
    // Four 1 MiB blobs in 3 MiB: the oldest went as the fourth came.
    expect([h0, h1, h2, h3].map((h) => isLocal(a, h))).toEqual([false, true, true, true]);
    // h1 used now, so h2 is the least recently used when h0 comes back.
    expect(a.readRange(h1, 10, 5).equals(bytes[1]!.subarray(10, 15))).toBe(true);
    expect(a.read(h0).equals(bytes[0]!)).toBe(true);
    expect([h0, h1, h2, h3].map((h) => isLocal(a, h))).toEqual([true, true, false, true]);
    expect(fs.readFileSync(a.pathOf(h2)).equals(bytes[2]!)).toBe(true);
    expect([h0, h1, h2, h3].map((h) => isLocal(a, h))).toEqual([true, true, true, false]);
    expect(a.has(h3)).toBe(true);
    expect(count(sql, 'blobs')).toBe(4);
  });

  it('keeps a blob larger than the whole cache while it is the one in use', () => {
    const { url } = database();
    const a = store(url, { cacheBytes: MiB });
    const small = a.put(randomBytes(1000));
    const big = randomBytes(2 * MiB);
    const hash = a.put(big);
    expect(isLocal(a, hash)).toBe(true);
    expect(isLocal(a, small)).toBe(false);
    expect(fs.readFileSync(a.pathOf(hash)).equals(big)).toBe(true);
  });

  it('takes stock of a folder left behind: evicts what PostgreSQL holds, never what only the folder has', () => {
    const { url } = database();
    const dir = fs.mkdtempSync(path.join(tmp, 'old-'));
    const first = store(url, { dir });
    const inPg = [0, 1, 2].map(() => first.put(randomBytes(MiB)));
    first.close();
    const localOnly = new BlobStore(dir).put(randomBytes(MiB));
    // The file only the folder has is the oldest: the first an eviction by age alone would take.
    [localOnly, ...inPg].forEach((h, i) => fs.utimesSync(path.join(dir, h.slice(0, 2), h), 1000 + i, 1000 + i));
    const again = store(url, { dir, cacheBytes: 2 * MiB });
    expect([...inPg, localOnly].map((h) => isLocal(again, h))).toEqual([false, false, true, true]);
    expect(again.read(inPg[0]!).length).toBe(MiB);
  });

  it('refuses a blob whose chunks in PostgreSQL do not match its hash, and leaves no file for it', () => {
    const { url, sql } = database();
    const hash = store(url).put(randomBytes(2 * MiB));
    sql.query('UPDATE blob_chunks SET data = $1 WHERE hash = $2 AND idx = 1', [new Uint8Array(MiB), hash]);
    const b = store(url);
    expect(() => b.read(hash)).toThrow(/does not match/);
    expect(filesIn(dirOf(b))).toEqual([]);
  });
});
