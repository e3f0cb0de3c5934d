/**
 * Content-addressed files on disk (models, data sets): <dir>/<first two hex>/<sha256>.
 * Written through a temp file and a rename, so a crash never leaves a half-written blob under its name.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class BlobStore {
  constructor(private readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  pathOf(hash: string): string {
    return path.join(this.dir, hash.slice(0, 2), hash);
  }

  has(hash: string): boolean {
    return fs.existsSync(this.pathOf(hash));
  }

  /** Stores bytes under their SHA-256 and returns it; storing the same bytes twice is a no-op. */
  put(bytes: Uint8Array): string {
    const hash = sha256(bytes);
    const file = this.pathOf(hash);
    if (fs.existsSync(file)) return hash;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
    return hash;
  }

  read(hash: string): Buffer {
    return fs.readFileSync(this.pathOf(hash));
  }

  /** Reads `length` bytes at `offset`: a slice of a data set's items without loading the rest. */
  readRange(hash: string, offset: number, length: number): Buffer {
    const fd = fs.openSync(this.pathOf(hash), 'r');
    try {
      const out = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const n = fs.readSync(fd, out, got, length - got, offset + got);
        if (n === 0) throw new Error(`blob ${hash} is shorter than expected`);
        got += n;
      }
      return out;
    } finally {
      fs.closeSync(fd);
    }
  }
}
