import { describe, expect, it } from 'vitest';
import { bytesOf } from '../test/helpers/npy-fixtures.js';
import { Cast, castChunk, castFor, describeCast } from './dtype-cast.js';

const ctx = { input: 'x', firstElement: 0, itemElements: 3 };

describe('castChunk', () => {
  it('rounds float64 to the nearest float32, as astype(np.float32) does, and keeps NaN and infinities', () => {
    const v = [0.1, 1 / 3, -2.5, 1e-40, 3.4028235e38, -0, NaN, Infinity, -Infinity];
    const out = castChunk(Cast.f64ToF32, bytesOf(Float64Array.from(v)), ctx);
    expect(out).toEqual(bytesOf(Float32Array.from(v.map(Math.fround))));
    expect(Array.from(new Float32Array(out.buffer))[4]).toBe(3.4028234663852886e38);
  });

  it('refuses a finite float64 beyond float32\'s range, naming the item and element', () => {
    const v = Float64Array.from([1, 2, 3, 4, -1e39, 6]);
    expect(() => castChunk(Cast.f64ToF32, bytesOf(v), { input: 'x', firstElement: 6, itemElements: 3 }))
      .toThrow("input x: item 3, element 1 is -1e+39, beyond float32's range (±3.4028e+38); it would become -Infinity");
  });

  it('widens int32 token ids to int64, negative ones included', () => {
    const out = castChunk(Cast.i32ToI64, bytesOf(Int32Array.from([0, 1, -1, 2147483647, -2147483648])), ctx);
    expect(out).toEqual(bytesOf(BigInt64Array.from([0n, 1n, -1n, 2147483647n, -2147483648n])));
  });

  it('narrows int64 to int32 when every value fits, and refuses one that does not', () => {
    const ok = BigInt64Array.from([0n, -1n, 2147483647n, -2147483648n, 42n]);
    expect(castChunk(Cast.i64ToI32, bytesOf(ok), ctx)).toEqual(bytesOf(Int32Array.from([0, -1, 2147483647, -2147483648, 42])));
    for (const bad of [2147483648n, -2147483649n, -8589934587n]) {
      expect(() => castChunk(Cast.i64ToI32, bytesOf(BigInt64Array.from([7n, bad])), ctx))
        .toThrow(`input x: item 0, element 1 is ${bad}, beyond int32's range`);
    }
  });

  it('widens float32 to float64 exactly', () => {
    const f = Float32Array.from([0.1, -3, 1e-45]);
    expect(castChunk(Cast.f32ToF64, bytesOf(f), ctx)).toEqual(bytesOf(Float64Array.from(f)));
  });

  it('reads a chunk that is not 8-byte aligned in its buffer', () => {
    const bytes = new Uint8Array(8 * 2 + 4);
    bytes.set(bytesOf(Float64Array.from([1.5, 0.1])), 4);
    expect(castChunk(Cast.f64ToF32, bytes.subarray(4), ctx)).toEqual(bytesOf(Float32Array.from([1.5, Math.fround(0.1)])));
  });
});

describe('castFor', () => {
  it('names the conversions it makes and none for the rest', () => {
    expect(castFor('float64', 'float32')).toBe(Cast.f64ToF32);
    expect(castFor('int32', 'int64')).toBe(Cast.i32ToI64);
    expect(castFor('int64', 'int32')).toBe(Cast.i64ToI32);
    expect(castFor('float32', 'float32')).toBeNull();
    expect(castFor('int64', 'float32')).toBeNull();
    expect(castFor('uint8', 'float16')).toBeNull();
    expect(describeCast(Cast.f64ToF32)).toBe("float64 -> float32 (numpy's default dtype)");
  });
});
