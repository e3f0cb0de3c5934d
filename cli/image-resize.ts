/**
 * Bilinear resizing of an RGBA image to float pixels, with half-pixel centres (as OpenCV's INTER_LINEAR and
 * ONNX Resize with `half_pixel`): the same size gives the image back unchanged. No antialiasing, so a photo
 * shrunk by much more than 2x keeps some aliasing; resize large photos beforehand when that matters.
 */
import type { RgbaImage } from './image-decode.js';

/** Source coordinate of each destination column (or row): its lower neighbour and the weight of the upper one. */
function taps(src: number, dst: number): { lo: Int32Array; hi: Int32Array; w: Float64Array } {
  const lo = new Int32Array(dst);
  const hi = new Int32Array(dst);
  const w = new Float64Array(dst);
  for (let i = 0; i < dst; i++) {
    const s = Math.min(Math.max((i + 0.5) * (src / dst) - 0.5, 0), src - 1);
    lo[i] = Math.floor(s);
    hi[i] = Math.min(lo[i] + 1, src - 1);
    w[i] = s - lo[i];
  }
  return { lo, hi, w };
}

/** The image at `width` x `height`: RGBA floats in 0..255, row by row (width * height * 4 values). */
export function resizeBilinear(img: RgbaImage, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height * 4);
  if (img.width === width && img.height === height) {
    out.set(img.data.subarray(0, out.length));
    return out;
  }
  const xs = taps(img.width, width);
  const ys = taps(img.height, height);
  const src = img.data;
  const stride = img.width * 4;
  for (let y = 0; y < height; y++) {
    const r0 = ys.lo[y] * stride;
    const r1 = ys.hi[y] * stride;
    const wy = ys.w[y];
    for (let x = 0; x < width; x++) {
      const c0 = xs.lo[x] * 4;
      const c1 = xs.hi[x] * 4;
      const wx = xs.w[x];
      const o = (y * width + x) * 4;
      for (let c = 0; c < 4; c++) {
        const top = src[r0 + c0 + c] + (src[r0 + c1 + c] - src[r0 + c0 + c]) * wx;
        const bottom = src[r1 + c0 + c] + (src[r1 + c1 + c] - src[r1 + c0 + c]) * wx;
        out[o + c] = top + (bottom - top) * wy;
      }
    }
  }
  return out;
}
