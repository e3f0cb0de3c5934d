import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { afterAll, describe, expect, it } from 'vitest';
import { npyHeader } from '../shared/npy.js';
import { jpegFile, pngFile, rgba } from '../test/helpers/images-fixtures.js';
import { imageInput, listImages } from './image-input.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-images-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function folder(name: string, files: Record<string, Uint8Array | string>): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  for (const [f, bytes] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), bytes);
  return dir;
}

async function body(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return parts;
}

const spec = { name: 'x', dtype: 'float32', shape: ['n', 3, 2, 2] };
// 2x2 pixels, each (r, g, b) = (40x + 10y + k, 100 + k, 200 - k) for image k.
const pixel = (k: number) => (x: number, y: number) => [40 * x + 10 * y + k, 100 + k, 200 - k, 255];

describe('listImages', () => {
  it('keeps PNG and JPEG files sorted by name and passes over the rest', () => {
    const dir = folder('list', { 'b.JPG': 'x', 'a10.png': 'x', 'a2.jpeg': 'x', 'notes.txt': 'x', '.hidden.png': 'x', 'A.png': 'x' });
    fs.mkdirSync(path.join(dir, 'sub.png'));
    expect(listImages(dir)).toEqual({ images: ['A.png', 'a10.png', 'a2.jpeg', 'b.JPG'], ignored: ['.hidden.png', 'notes.txt', 'sub.png'] });
  });
});

describe('imageInput', () => {
  it('streams a .npy of the images in name order, one item per image, and a manifest of the files', async () => {
    const jpg = jpegFile(2, 2, rgba(2, 2, pixel(1)), 100);
    const dir = folder('mixed', { 'b.jpg': jpg, 'a.png': pngFile(2, 2, rgba(2, 2, pixel(0))), 'c.png': pngFile(4, 4, rgba(4, 4, (x, y) => pixel(2)(x >> 1, y >> 1))), 'readme.md': '#' });
    const input = imageInput(dir, spec, { scale: 1 / 255, mean: [0.5], std: [0.25] });
    expect(input.note).toBe(`input x: 3 images from ${dir} -> float32[3,3,2,2], nchw RGB 2x2 (bilinear), value = (pixel * 0.00392157 - 0.5) / 0.25`);
    expect(input.ignoredNote).toBe(`${dir}: ignoring 1 entry that is not PNG or JPEG: readme.md`);
    expect(input.manifest).toEqual({
      input: 'x', folder: dir, files: ['a.png', 'b.jpg', 'c.png'], dtype: 'float32', shape: [3, 3, 2, 2], layout: 'nchw', resize: '2x2',
      scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25],
    });
    const parts = await body(input.body());
    expect(parts.length).toBe(4); // the header, then one image at a time
    expect(parts[0]).toEqual(npyHeader('float32', [3, 3, 2, 2]));
    const item = (px: (x: number, y: number) => number[]) => {
      const v: number[] = [];
      for (let c = 0; c < 3; c++) for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) v.push((px(x, y)[c] / 255 - 0.5) / 0.25);
      return new Uint8Array(Float32Array.from(v).buffer);
    };
    const decoded = jpeg.decode(jpg, { useTArray: true });
    expect(parts[1]).toEqual(item(pixel(0)));
    expect(parts[2]).toEqual(item((x, y) => Array.from(decoded.data.subarray((y * 2 + x) * 4, (y * 2 + x) * 4 + 4))));
    expect(parts[3]).toEqual(item(pixel(2))); // 4x4 of 2x2 blocks, halved
  });

  it('stops at a corrupt image, naming it, after the images before it', async () => {
    const good = pngFile(2, 2, rgba(2, 2, pixel(0)));
    const dir = folder('corrupt', { '1.png': good, '2.png': good.subarray(0, 40), '3.png': good });
    const input = imageInput(dir, spec, {});
    const seen: number[] = [];
    await expect((async () => { for await (const p of input.body()) seen.push(p.byteLength); })())
      .rejects.toThrow(`${path.join(dir, '2.png')}: cannot decode it as PNG, corrupt or truncated`);
    expect(seen.length).toBe(2);
  });

  it('refuses a folder with no images, and a model input images do not fit, before reading any image', () => {
    expect(() => imageInput(folder('empty', { 'a.txt': 'x' }), spec, {})).toThrow('has no PNG or JPEG files (.png, .jpg, .jpeg)');
    const dir = folder('fine', { 'a.png': pngFile(2, 2, rgba(2, 2, pixel(0))) });
    expect(() => imageInput(dir, { ...spec, shape: ['n', 3, 'h', 'w'] }, {})).toThrow('give --resize WIDTHxHEIGHT');
  });
});
