import { describe, expect, it } from 'vitest';
import { rgba } from '../test/helpers/images-fixtures.js';
import { resizeBilinear } from './image-resize.js';

const img = (width: number, height: number, at: (x: number, y: number) => number[]) => ({ width, height, data: rgba(width, height, at) });

describe('resizeBilinear', () => {
  it('gives the same image back at the same size', () => {
    const a = img(3, 2, (x, y) => [x, y, x + y, 255]);
    expect(resizeBilinear(a, 3, 2)).toEqual(Float32Array.from(a.data));
  });

  it('averages a 2x2 image into one pixel', () => {
    expect(Array.from(resizeBilinear(img(2, 2, (x, y) => [x * 100 + y * 20, 10, 0, 255]), 1, 1))).toEqual([60, 10, 0, 255]);
  });

  it('interpolates with half-pixel centres when it grows an image', () => {
    // Source columns 0 and 100; destination centres fall at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    const out = resizeBilinear(img(2, 1, (x) => [x * 100, 0, 0, 0]), 4, 1);
    expect(Array.from(out.filter((_, i) => i % 4 === 0))).toEqual([0, 25, 75, 100]);
  });

  it('halves an image of 2x2 blocks exactly, block by block', () => {
    const colour = (bx: number, by: number) => [bx * 60 + by, by * 40, 255 - bx, 255];
    const big = img(8, 6, (x, y) => colour(x >> 1, y >> 1));
    expect(resizeBilinear(big, 4, 3)).toEqual(Float32Array.from(rgba(4, 3, colour)));
  });

  it('resizes width and height independently', () => {
    const out = resizeBilinear(img(4, 1, (x) => [x * 10, 0, 0, 0]), 2, 3);
    // Columns 0..3 halved: centres at 0.5 and 2.5; rows all the same source row.
    expect(Array.from(out.filter((_, i) => i % 4 === 0))).toEqual([5, 25, 5, 25, 5, 25]);
  });
});
