/**
 * The dtype conversions the CLI makes so arrays as numpy writes them fit a model's inputs: float64 (numpy's
 * default) to float32, int32 token ids to int64, and their reverses. A conversion works on one chunk at a
 * time and refuses, naming the element, a value the target cannot hold: a finite float64 beyond float32's
 * range (it would become infinity), an int64 beyond int32's. Rounding float64 to the nearest float32 is what
 * `arr.astype(np.float32)` does, and is accepted; NaN and infinities stay what they are.
 */
import { AppError } from '../shared/errors.js';
import { type DType, alignedCopy } from '../shared/tensor.js';

export const Cast = {
  f64ToF32: 'float64->float32',
  f32ToF64: 'float32->float64',
  i32ToI64: 'int32->int64',
  i64ToI32: 'int64->int32',
} as const;
export type Cast = (typeof Cast)[keyof typeof Cast];

/** Why a conversion is made, for the one line the CLI prints. */
const REASON: Record<Cast, string> = {
  [Cast.f64ToF32]: " (numpy's default dtype)",
  [Cast.f32ToF64]: '',
  [Cast.i32ToI64]: ' (token ids)',
  [Cast.i64ToI32]: ' (each value checked to fit)',
};

/** The conversion from `from` to a model's `to`, or null when there is none (same dtype, or none we make). */
export function castFor(from: DType, to: string): Cast | null {
  const key = `${from}->${to}`;
  return (Object.values(Cast) as string[]).includes(key) ? (key as Cast) : null;
}

/** The dtype a conversion makes. */
export function castTarget(cast: Cast): DType {
  return cast.split('->')[1] as DType;
}

export function describeCast(cast: Cast): string {
  return `${cast.replace('->', ' -> ')}${REASON[cast]}`;
}

/** Bytes per element before and after. */
export function castSizes(cast: Cast): { from: number; to: number } {
  return cast === Cast.f64ToF32 || cast === Cast.i64ToI32 ? { from: 8, to: 4 } : { from: 4, to: 8 };
}

/** Where a chunk sits in its array, so a refused value is named by item and element. */
export interface CastContext {
  input: string;
  /** Index of the chunk's first element in the whole array (C order). */
  firstElement: number;
  /** Elements per item (the product of the dims after the first). */
  itemElements: number;
}

function where(ctx: CastContext, i: number): string {
  const n = ctx.firstElement + i;
  const per = Math.max(1, ctx.itemElements);
  return `item ${Math.floor(n / per)}, element ${n % per}`;
}

const F32_MAX = 3.4028234663852886e38;

/** Converts one chunk of whole elements (little-endian bytes) and returns the converted bytes. */
export function castChunk(cast: Cast, src: Uint8Array, ctx: CastContext): Uint8Array {
  const { from, to } = castSizes(cast);
  if (src.byteLength % from !== 0) throw new Error(`castChunk: ${src.byteLength} bytes is not whole ${from}-byte elements`);
  const buf = src.byteOffset % 8 === 0 ? src.buffer : alignedCopy(src);
  const off = src.byteOffset % 8 === 0 ? src.byteOffset : 0;
  const n = src.byteLength / from;
  const out = new Uint8Array(n * to);
  switch (cast) {
    case Cast.f64ToF32: {
      const a = new Float64Array(buf, off, n);
      const b = new Float32Array(out.buffer);
      for (let i = 0; i < n; i++) {
        const v = a[i];
        const f = Math.fround(v);
        if (f === Infinity || f === -Infinity) {
          if (Number.isFinite(v)) {
            throw new AppError('INVALID_PAYLOAD', `input ${ctx.input}: ${where(ctx, i)} is ${v}, beyond float32's range (±${F32_MAX.toPrecision(5)}); it would become ${f}. Scale the data, or clip it with np.clip`);
          }
        }
        b[i] = f;
      }
      break;
    }
    case Cast.f32ToF64: {
      const a = new Float32Array(buf, off, n);
      const b = new Float64Array(out.buffer);
      for (let i = 0; i < n; i++) b[i] = a[i];
      break;
    }
    case Cast.i32ToI64: {
      const a = new Int32Array(buf, off, n);
      const b = new Int32Array(out.buffer);
      for (let i = 0; i < n; i++) {
        b[2 * i] = a[i];
        b[2 * i + 1] = a[i] < 0 ? -1 : 0;
      }
      break;
    }
    case Cast.i64ToI32: {
      const a = new Int32Array(buf, off, 2 * n);
      const b = new Int32Array(out.buffer);
      for (let i = 0; i < n; i++) {
        const lo = a[2 * i];
        const hi = a[2 * i + 1];
        if (hi !== (lo >> 31)) {
          const v = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
          throw new AppError('INVALID_PAYLOAD', `input ${ctx.input}: ${where(ctx, i)} is ${v}, beyond int32's range (-2147483648 to 2147483647): the model takes int32`);
        }
        b[i] = lo;
      }
      break;
    }
  }
  return out;
}
