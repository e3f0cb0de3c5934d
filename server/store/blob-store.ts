/**
 * Content-addressed files on disk (models, data sets): <dir>/<first two hex>/<sha256>.
 * Written through a temp file and a rename, so a crash never leaves a half-written blob under its name.
 * Private to the server: folders 0700, files 0600, whatever the process umask.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';

/** A stream was longer than allowed; what was written is gone. */
export class TooLargeError extends Error {}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/** Blobs read by range (data sets) keep a file descriptor open, up to this many. */
const OPEN_FILES = 16;
/** Range reads go through chunks of this size, kept (up to CACHE_BYTES) so consecutive tasks share one read. */
const CHUNK = 1 << 20;
const CACHE_BYTES = 64 * CHUNK;

export class BlobStore {
  private readonly open = new Map<string, number>();
  /** Chunks of blobs read by range, least recently used first (blobs are immutable: a chunk never goes stale). */
  private readonly chunks = new Map<string, Buffer>();
  private cachedBytes = 0;

  constructor(protected readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
    // A folder from an earlier version may be open to others; closing it closes everything under it.
    fs.chmodSync(dir, DIR_MODE);
  }

  pathOf(hash: string): string {
    return this.localPath(hash);
  }

  /**
   * Where the blob's file is or would be. The methods here go through this, not `pathOf`, so a subclass may make
   * `pathOf` fetch a missing blob first (PgBlobStore) without these fetching too.
   */
  protected localPath(hash: string): string {
    return path.join(this.dir, hash.slice(0, 2), hash);
  }

  has(hash: string): boolean {
    return fs.existsSync(this.localPath(hash));
  }

  /** Stores bytes under their SHA-256 and returns it; storing the same bytes twice is a no-op. */
  put(bytes: Uint8Array): string {
    const hash = sha256(bytes);
    const file = this.localPath(hash);
    if (fs.existsSync(file)) return hash;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: DIR_MODE });
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, bytes, { mode: FILE_MODE });
    fs.renameSync(tmp, file);
    return hash;
  }

  /**
   * Stores a stream under its SHA-256 without holding it in memory: written to a temp file while hashed,
   * then renamed. Longer than `maxBytes` rejects with TooLargeError and leaves nothing behind.
   */
  async putStream(source: Readable, maxBytes: number): Promise<{ hash: string; size: number }> {
    const tmp = path.join(this.dir, `upload-${randomBytes(8).toString('hex')}.tmp`);
    const out = fs.createWriteStream(tmp, { mode: FILE_MODE });
    const hasher = createHash('sha256');
    let size = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        source.on('data', (chunk: Buffer) => {
          size += chunk.byteLength;
          // Over the cap: stop keeping it, but read on (up to twice the cap) so the sender gets our answer.
          if (size > maxBytes) {
            if (size > 2 * maxBytes) source.destroy();
            return;
          }
          hasher.update(chunk);
          if (!out.write(chunk)) {
            source.pause();
            out.once('drain', () => source.resume());
          }
        });
        source.on('end', () => (size > maxBytes ? reject(new TooLargeError(`more than ${maxBytes} bytes`)) : resolve()));
        source.on('close', () => { if (size > maxBytes) reject(new TooLargeError(`more than ${maxBytes} bytes`)); });
        source.on('error', reject);
        out.on('error', reject);
      });
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    } catch (err) {
      out.destroy();
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    const hash = hasher.digest('hex');
    const file = this.localPath(hash);
    if (fs.existsSync(file)) fs.rmSync(tmp, { force: true });
    else {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: DIR_MODE });
      fs.renameSync(tmp, file);
    }
    return { hash, size };
  }

  remove(hash: string): void {
    this.closeFile(hash);
    for (const [key, chunk] of this.chunks) {
      if (key.startsWith(`${hash}:`)) { this.chunks.delete(key); this.cachedBytes -= chunk.byteLength; }
    }
    fs.rmSync(this.localPath(hash), { force: true });
  }

  /** Closes the files kept open for range reads. */
  close(): void {
    for (const hash of [...this.open.keys()]) this.closeFile(hash);
  }

  private closeFile(hash: string): void {
    const fd = this.open.get(hash);
    if (fd === undefined) return;
    this.open.delete(hash);
    fs.closeSync(fd);
  }

  /** A descriptor for range reads, kept open: a task's inputs are read without an open and a close each time. */
  private fileOf(hash: string): number {
    let fd = this.open.get(hash);
    if (fd === undefined) {
      if (this.open.size >= OPEN_FILES) this.closeFile(this.open.keys().next().value!);
      fd = fs.openSync(this.localPath(hash), 'r');
      this.open.set(hash, fd);
    }
    return fd;
  }

  read(hash: string): Buffer {
    return fs.readFileSync(this.localPath(hash));
  }

  /**
   * Reads `length` bytes at `offset`: a slice of a data set's items without loading the rest. Through 1 MiB chunks
   * kept in a bounded cache, so the tasks of a job, read one after another, cost one read per chunk, not per task.
   */
  readRange(hash: string, offset: number, length: number): Buffer {
    const first = Math.floor(offset / CHUNK);
    const last = Math.floor((offset + Math.max(0, length - 1)) / CHUNK);
    if (length > 0 && first === last) {
      const chunk = this.chunk(hash, first);
      const at = offset - first * CHUNK;
      if (at + length > chunk.byteLength) throw new Error(`blob ${hash} is shorter than expected`);
      return Buffer.from(chunk.subarray(at, at + length));
    }
    const out = Buffer.allocUnsafe(length);
    for (let c = first, got = 0; got < length; c++) {
      const chunk = this.chunk(hash, c);
      const at = offset + got - c * CHUNK;
      const n = Math.min(length - got, chunk.byteLength - at);
      if (n <= 0) throw new Error(`blob ${hash} is shorter than expected`);
      chunk.copy(out, got, at, at + n);
      got += n;
    }
    return out;
  }

  /** Chunk `index` of a blob (the last one may be short), from the cache or the file. */
  private chunk(hash: string, index: number): Buffer {
    const key = `${hash}:${index}`;
    const hit = this.chunks.get(key);
    if (hit) {
      this.chunks.delete(key);
      this.chunks.set(key, hit);
      return hit;
    }
    const fd = this.fileOf(hash);
    const buf = Buffer.allocUnsafe(CHUNK);
    let got = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, got, CHUNK - got, index * CHUNK + got);
      if (n === 0) break;
      got += n;
      if (got === CHUNK) break;
    }
    const chunk = got === CHUNK ? buf : Buffer.from(buf.subarray(0, got));
    this.chunks.set(key, chunk);
    this.cachedBytes += chunk.byteLength;
    while (this.cachedBytes > CACHE_BYTES) {
      const [oldest, c] = this.chunks.entries().next().value!;
      this.chunks.delete(oldest);
      this.cachedBytes -= c.byteLength;
    }
    return chunk;
  }
}
