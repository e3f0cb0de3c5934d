import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlobStore } from './blob-store.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-blobs-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('BlobStore range reads', () => {
  it('gives the bytes of any range, within a chunk, across chunks and up to the end', () => {
    const blobs = new BlobStore(dir);
    const bytes = randomBytes(3.5 * 2 ** 20 + 17);
    const hash = blobs.put(bytes);
    const MiB = 2 ** 20;
    for (const [offset, length] of [[0, 10], [100, 4096], [MiB - 5, 10], [MiB - 5, 2 * MiB + 20], [3 * MiB, bytes.length - 3 * MiB], [bytes.length - 1, 1], [7, 0]]) {
      expect(blobs.readRange(hash, offset!, length!).equals(bytes.subarray(offset!, offset! + length!))).toBe(true);
    }
    expect(() => blobs.readRange(hash, bytes.length - 4, 8)).toThrow(/shorter/);
    blobs.close();
  });

  it('reads a removed and re-stored blob afresh, not from its cached chunks', () => {
    const blobs = new BlobStore(dir);
    const bytes = randomBytes(4096);
    const hash = blobs.put(bytes);
    expect(blobs.readRange(hash, 0, 16).equals(bytes.subarray(0, 16))).toBe(true);
    blobs.remove(hash);
    expect(() => blobs.readRange(hash, 0, 16)).toThrow();
    blobs.close();
  });
});
