/**
 * Tiny PNG and JPEG files made in code for tests (pngjs and jpeg-js encoders), and an ONNX model that takes
 * images: x float32 [N, 3, H, W] (or [N, H, W, 3]) flattened and multiplied by a fixed matrix, so every
 * pixel, channel and position shows in its output.
 */
import { AttributeProto_AttributeType } from 'onnx-buf';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { T, encodeGraph, floatTensor, tensorInfo } from './onnx-build.js';
import { seeded } from './models.js';

/** RGBA bytes of a width x height image whose pixel (x, y) is `at(x, y)` = [r, g, b, a]. */
export function rgba(width: number, height: number, at: (x: number, y: number) => number[]): Uint8Array {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(at(x, y), (y * width + x) * 4);
  return data;
}

/** A PNG file; colorType 2 (RGB) or 6 (RGBA, the default), 8-bit, or 16-bit when `bitDepth` is 16. */
export function pngFile(width: number, height: number, data: Uint8Array, o: { colorType?: 0 | 2 | 6; bitDepth?: 8 | 16 } = {}): Uint8Array {
  const png = new PNG({ width, height, colorType: o.colorType ?? 6, bitDepth: o.bitDepth ?? 8 });
  if ((o.bitDepth ?? 8) === 16) {
    // pngjs packs 16-bit from 16-bit input: each 8-bit value v as v * 257 (the same value at 16 bits).
    const wide = Buffer.alloc(data.length * 2);
    for (let i = 0; i < data.length; i++) wide.writeUInt16BE(data[i] * 257, i * 2);
    png.data = wide;
  } else png.data = Buffer.from(data);
  return new Uint8Array(PNG.sync.write(png, { colorType: o.colorType ?? 6, bitDepth: o.bitDepth ?? 8, inputHasAlpha: true }));
}

/** A baseline JPEG file (lossy: decode it to know its pixels). */
export function jpegFile(width: number, height: number, data: Uint8Array, quality = 90): Uint8Array {
  return new Uint8Array(jpeg.encode({ width, height, data }, quality).data);
}

/** y = flatten(x) W, x float32 [n, 3, h, w] (nchw) or [n, h, w, 3] (nhwc), W fixed [3hw, 4]. */
export function imageModel(h: number, w: number, layout: 'nchw' | 'nhwc' = 'nchw'): Uint8Array {
  const k = 3 * h * w;
  const dims = layout === 'nchw' ? [3, h, w] : [h, w, 3];
  return encodeGraph({
    name: 'image',
    node: [
      { opType: 'Flatten', input: ['x'], output: ['flat'], attribute: [{ name: 'axis', type: AttributeProto_AttributeType.INT, i: 1n }] },
      { opType: 'MatMul', input: ['flat', 'W'], output: ['y'] },
    ],
    initializer: [floatTensor('W', [k, 4], seeded(11, k * 4))],
    input: [tensorInfo('x', T.FLOAT, ['n', ...dims])],
    output: [tensorInfo('y', T.FLOAT, ['n', 4])],
  }, { irVersion: 7, opset: 13, producerName: 'tabgrid-tests' });
}
