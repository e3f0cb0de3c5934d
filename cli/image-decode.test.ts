import { describe, expect, it } from 'vitest';
import { jpegFile, pngFile, rgba } from '../test/helpers/images-fixtures.js';
import { decodeImage } from './image-decode.js';

const pixels = rgba(5, 3, (x, y) => [x * 50, y * 100, (x * y * 37) % 256, 200 + x]);

describe('decodeImage', () => {
  it('decodes an RGBA PNG exactly', () => {
    expect(decodeImage(pngFile(5, 3, pixels), 'a.png')).toEqual({ width: 5, height: 3, data: pixels });
  });

  it('decodes RGB, grey and 16-bit PNGs to 8-bit RGBA', () => {
    const opaque = rgba(5, 3, (x, y) => [x * 50, y * 100, 7, 255]);
    expect(decodeImage(pngFile(5, 3, opaque, { colorType: 2 }), 'rgb.png').data).toEqual(opaque);
    expect(decodeImage(pngFile(5, 3, pixels, { bitDepth: 16 }), 'deep.png').data).toEqual(pixels);
    const grey = rgba(2, 2, (x, y) => [x * 100 + y, x * 100 + y, x * 100 + y, 255]);
    expect(decodeImage(pngFile(2, 2, grey, { colorType: 0 }), 'grey.png').data).toEqual(grey);
  });

  it('decodes a JPEG to its size and close to its pixels (JPEG is lossy)', () => {
    const smooth = rgba(16, 8, (x, y) => [100 + x * 4, 80 + y * 6, 120, 255]);
    const img = decodeImage(jpegFile(16, 8, smooth, 95), 'a.jpg');
    expect([img.width, img.height]).toEqual([16, 8]);
    const worst = Math.max(...Array.from(img.data, (v, i) => Math.abs(v - smooth[i])));
    expect(worst).toBeLessThanOrEqual(6);
  });

  it('tells the format by content, not by name', () => {
    expect(decodeImage(pngFile(5, 3, pixels), 'really-a-png.jpg').width).toBe(5);
  });

  it('refuses corrupt, truncated and non-image files, naming the file', () => {
    const png = pngFile(5, 3, pixels);
    expect(() => decodeImage(png.subarray(0, png.length - 20), 'photos/cut.png')).toThrow(/^photos\/cut\.png: cannot decode it as PNG, corrupt or truncated \(/);
    const jpg = jpegFile(16, 8, rgba(16, 8, () => [1, 2, 3, 255]));
    expect(() => decodeImage(jpg.subarray(0, 100), 'photos/cut.jpg')).toThrow(/^photos\/cut\.jpg: cannot decode it as JPEG, corrupt or truncated \(/);
    expect(() => decodeImage(new TextEncoder().encode('hello'), 'photos/notes.png')).toThrow('photos/notes.png: not a PNG or JPEG file (its first bytes say neither)');
  });
});
