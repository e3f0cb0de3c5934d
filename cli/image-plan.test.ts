import { describe, expect, it } from 'vitest';
import type { TensorSpec } from '../shared/protocol.js';
import { describePlan, itemDims, planImages, toItem } from './image-plan.js';

const spec = (shape: (number | string)[], dtype = 'float32'): TensorSpec => ({ name: 'x', dtype, shape });

describe('planImages', () => {
  it('reads layout, channels and size from the model\'s dims', () => {
    expect(planImages(spec(['n', 3, 224, 200]), {})).toMatchObject({ layout: 'nchw', channels: 3, width: 200, height: 224, scale: 1, mean: [0, 0, 0], std: [1, 1, 1] });
    expect(planImages(spec([1, 28, 32, 1]), {})).toMatchObject({ layout: 'nhwc', channels: 1, width: 32, height: 28 });
    expect(planImages(spec(['n', 4, 8, 8]), {})).toMatchObject({ layout: 'nchw', channels: 4 });
    // Both axes could be channels: ONNX's channels-first wins unless --layout says otherwise.
    expect(planImages(spec(['n', 3, 5, 3]), {}).layout).toBe('nchw');
    expect(planImages(spec(['n', 3, 5, 3]), { layout: 'nhwc' })).toMatchObject({ layout: 'nhwc', width: 5, height: 3, channels: 3 });
  });

  it('takes --resize for a model of any size, and 3 channels for a symbolic channel axis', () => {
    expect(planImages(spec(['n', 'c', 'h', 'w']), { layout: 'nchw', resize: { width: 64, height: 48 } })).toMatchObject({ channels: 3, width: 64, height: 48 });
  });

  it('broadcasts one mean or std to every channel', () => {
    expect(planImages(spec(['n', 3, 2, 2]), { mean: [0.5], std: [0.25], scale: 1 / 255 })).toMatchObject({ mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], scale: 1 / 255 });
  });

  it.each([
    [spec(['n', 3, 8, 8], 'int64'), {}, 'input x int64[n, 3, 8, 8]: images go to a float32, float64 or uint8 input'],
    [spec(['n', 192]), {}, 'images go to a 4-D input, [N, C, H, W] or [N, H, W, C]'],
    [spec(['n', 'c', 'h', 'w']), {}, 'cannot tell where its channels are (1, 3 or 4 at axis 1 or 3): give --layout nchw or nhwc'],
    [spec(['n', 3, 'h', 'w']), {}, 'it takes any image size: give --resize WIDTHxHEIGHT'],
    [spec(['n', 3, 224, 224]), { resize: { width: 256, height: 256 } }, 'it takes images of 224x224 (width x height), not --resize 256x256'],
    [spec(['n', 3, 8, 8]), { layout: 'nhwc' as const }, 'as nhwc it has 8 channels; images give 1 (grey), 3 (RGB) or 4 (RGBA)'],
    [spec(['n', 3, 8, 8]), { mean: [1, 2] }, '--mean has 2 values; the input has 3 channels'],
    [spec(['n', 8, 8, 3], 'uint8'), { scale: 1 / 255 }, 'a uint8 input takes the pixels as they are'],
  ])('refuses %j with %j, saying what to give', (s, o, message) => {
    expect(() => planImages(s, o)).toThrow(message);
  });
});

describe('toItem', () => {
  // A 2x1 image: pixel 0 = (10, 20, 30), pixel 1 = (40, 50, 60).
  const pixels = Float32Array.from([10, 20, 30, 255, 40, 50, 60, 255]);
  const norm = { scale: 0.5, mean: [1, 2, 3], std: [2, 4, 8] };
  const v = (p: number, m: number, s: number) => (p * 0.5 - m) / s;

  it('lays out channels first, each value (pixel * scale - mean) / std', () => {
    const plan = { ...planImages(spec(['n', 3, 1, 2]), {}), ...norm };
    expect(itemDims(plan)).toEqual([3, 1, 2]);
    expect(new Float32Array(toItem(pixels, plan).buffer)).toEqual(Float32Array.from([v(10, 1, 2), v(40, 1, 2), v(20, 2, 4), v(50, 2, 4), v(30, 3, 8), v(60, 3, 8)]));
    expect(describePlan(plan)).toBe('nchw RGB 2x1 (bilinear), value = (pixel * 0.5 - 1,2,3) / 2,4,8');
  });

  it('lays out channels last', () => {
    const plan = { ...planImages(spec(['n', 1, 2, 3]), { layout: 'nhwc' }), ...norm };
    expect(itemDims(plan)).toEqual([1, 2, 3]);
    expect(new Float32Array(toItem(pixels, plan).buffer)).toEqual(Float32Array.from([v(10, 1, 2), v(20, 2, 4), v(30, 3, 8), v(40, 1, 2), v(50, 2, 4), v(60, 3, 8)]));
  });

  it('makes grey as BT.601 luma, float64 when the model takes it, and rounded uint8', () => {
    const grey = planImages(spec(['n', 1, 1, 2], 'float64'), {});
    expect(new Float64Array(toItem(pixels, grey).buffer)).toEqual(Float64Array.from([0.299 * 10 + 0.587 * 20 + 0.114 * 30, 0.299 * 40 + 0.587 * 50 + 0.114 * 60]));
    const u8 = planImages(spec(['n', 1, 2, 3], 'uint8'), { layout: 'nhwc' });
    expect(Array.from(toItem(Float32Array.from([0.4, 254.6, -3, 0, 300, 7.5, 8.49, 0]), u8))).toEqual([0, 255, 0, 255, 8, 8]);
    expect(describePlan(u8)).toBe('nhwc RGB 2x1 (bilinear), pixels 0..255');
  });
});
