/**
 * How images become one model input: the size, the layout (channels first or last), the channels
 * (1: grey, 3: RGB, 4: RGBA) and the value of each pixel, `(pixel * scale - mean[c]) / std[c]` with pixel in
 * 0..255. What the flags leave open is read from the model's input dims; what neither says is asked for.
 */
import { AppError } from '../shared/errors.js';
import type { TensorSpec } from '../shared/protocol.js';
import { type ImageOptions, Layout } from './image-options.js';

export const ImageDType = { float32: 'float32', float64: 'float64', uint8: 'uint8' } as const;
export type ImageDType = (typeof ImageDType)[keyof typeof ImageDType];

export interface ImagePlan {
  input: string;
  layout: Layout;
  channels: 1 | 3 | 4;
  width: number;
  height: number;
  dtype: ImageDType;
  scale: number;
  mean: number[];
  std: number[];
}

const CHANNELS = [1, 3, 4];
const fmt = (dims: readonly (number | string)[]) => `[${dims.join(', ')}]`;

/** The plan for images into `spec`, a 4-D input [N, C, H, W] or [N, H, W, C]; throws AppError saying what to give. */
export function planImages(spec: TensorSpec, o: ImageOptions): ImagePlan {
  const { name, shape } = spec;
  const bad = (why: string) => new AppError('SHAPE_MISMATCH', `input ${name} ${spec.dtype}${fmt(shape)}: ${why}`);
  if (!(Object.values(ImageDType) as string[]).includes(spec.dtype)) throw bad('images go to a float32, float64 or uint8 input');
  if (shape.length !== 4) throw bad('images go to a 4-D input, [N, C, H, W] or [N, H, W, C]');
  const isChannels = (d: number | string) => typeof d === 'number' && CHANNELS.includes(d);
  // ONNX vision models are channels-first; a channels axis of 1, 3 or 4 is looked for there first.
  const layout = o.layout ?? (isChannels(shape[1]) ? Layout.nchw : isChannels(shape[3]) ? Layout.nhwc : undefined);
  if (!layout) throw bad('cannot tell where its channels are (1, 3 or 4 at axis 1 or 3): give --layout nchw or nhwc');
  const [c, h, w] = layout === Layout.nchw ? [shape[1], shape[2], shape[3]] : [shape[3], shape[1], shape[2]];
  if (typeof c === 'number' && !CHANNELS.includes(c)) throw bad(`as ${layout} it has ${c} channels; images give 1 (grey), 3 (RGB) or 4 (RGBA)`);
  const channels = (typeof c === 'number' ? c : 3) as 1 | 3 | 4;
  let width: number;
  let height: number;
  if (o.resize) {
    ({ width, height } = o.resize);
    if ((typeof w === 'number' && w !== width) || (typeof h === 'number' && h !== height)) {
      throw bad(`it takes images of ${w}x${h} (width x height), not --resize ${width}x${height}`);
    }
  } else {
    if (typeof w !== 'number' || typeof h !== 'number') throw bad('it takes any image size: give --resize WIDTHxHEIGHT');
    width = w;
    height = h;
  }
  const perChannel = (flag: string, v: number[] | undefined, dflt: number) => {
    if (!v) return new Array<number>(channels).fill(dflt);
    if (v.length === 1) return new Array<number>(channels).fill(v[0]);
    if (v.length !== channels) throw bad(`${flag} has ${v.length} values; the input has ${channels} channels (give ${channels} values, or one for all)`);
    return v;
  };
  const plan: ImagePlan = {
    input: name, layout, channels, width, height, dtype: spec.dtype as ImageDType,
    scale: o.scale ?? 1, mean: perChannel('--mean', o.mean, 0), std: perChannel('--std', o.std, 1),
  };
  if (plan.dtype === ImageDType.uint8 && (o.scale !== undefined || o.mean || o.std)) {
    throw bad('a uint8 input takes the pixels as they are: --scale, --mean and --std are for float inputs');
  }
  return plan;
}

/** The dims of one item: [C, H, W] or [H, W, C]. */
export function itemDims(p: ImagePlan): number[] {
  return p.layout === Layout.nchw ? [p.channels, p.height, p.width] : [p.height, p.width, p.channels];
}

/** How the plan reads, for the line the CLI prints. */
export function describePlan(p: ImagePlan): string {
  const list = (v: number[]) => (v.every((x) => x === v[0]) ? String(v[0]) : v.join(','));
  const colour = p.channels === 1 ? 'grey' : p.channels === 3 ? 'RGB' : 'RGBA';
  const value = p.dtype === ImageDType.uint8 ? 'pixels 0..255' : `value = (pixel * ${+p.scale.toPrecision(6)} - ${list(p.mean)}) / ${list(p.std)}`;
  return `${p.layout} ${colour} ${p.width}x${p.height} (bilinear), ${value}`;
}

/** One item's bytes from resized RGBA float pixels (width * height * 4, 0..255). */
export function toItem(pixels: Float32Array, p: ImagePlan): Uint8Array {
  const { width, height, channels, layout } = p;
  const hw = width * height;
  const n = hw * channels;
  const out = p.dtype === ImageDType.float32 ? new Float32Array(n) : p.dtype === ImageDType.float64 ? new Float64Array(n) : new Uint8Array(n);
  const { scale, mean, std } = p;
  const round = p.dtype === ImageDType.uint8;
  for (let i = 0; i < hw; i++) {
    const r = pixels[4 * i];
    const g = pixels[4 * i + 1];
    const b = pixels[4 * i + 2];
    for (let c = 0; c < channels; c++) {
      // Grey as ITU-R BT.601 luma, as PIL's convert('L') (without its rounding).
      const v = channels === 1 ? 0.299 * r + 0.587 * g + 0.114 * b : pixels[4 * i + c];
      const at = layout === Layout.nchw ? c * hw + i : i * channels + c;
      out[at] = round ? Math.min(255, Math.max(0, Math.round(v))) : (v * scale - mean[c]) / std[c];
    }
  }
  return new Uint8Array(out.buffer);
}
