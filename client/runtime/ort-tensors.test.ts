import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import type { WireTensor } from '../../shared/protocol.js';
import type { DType } from '../../shared/tensor.js';
import { fromOrtOutputs, fromOrtTensor, toFeeds, toOrtTensor } from './ort-tensors.js';

const samples: Record<DType, ArrayBufferView> = {
  float32: Float32Array.from([1.5, -2, 3e-8, 4]),
  float64: Float64Array.from([1.5, -2, Math.PI, 4]),
  int64: BigInt64Array.from([1n, -2n, 2n ** 40n, 4n]),
  int32: Int32Array.from([1, -2, 3, 2 ** 30]),
  int8: Int8Array.from([1, -2, 3, 127]),
  uint8: Uint8Array.from([1, 2, 3, 255]),
  bool: Uint8Array.from([1, 0, 0, 1]),
};

function bytes(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

describe('ort tensor conversion', () => {
  for (const [dtype, values] of Object.entries(samples) as [DType, ArrayBufferView][]) {
    it(`round-trips ${dtype}`, () => {
      const wire: WireTensor = { name: 'x', dtype, dims: [2, 2], data: bytes(values).slice().buffer };
      const t = toOrtTensor(wire);
      expect(t.type).toBe(dtype);
      expect(t.dims).toEqual([2, 2]);
      const back = fromOrtTensor('y', t);
      expect(back).toMatchObject({ name: 'y', dtype, dims: [2, 2] });
      expect([...back.data]).toEqual([...bytes(values)]);
    });
  }

  it('copies unaligned bytes (a Buffer slice at an odd offset) before viewing them', () => {
    const pool = new Uint8Array(1 + 8);
    pool.set(bytes(Float32Array.from([7, 8])), 1);
    const t = toOrtTensor({ name: 'x', dtype: 'float32', dims: [2], data: pool.subarray(1) });
    expect([...(t.data as Float32Array)]).toEqual([7, 8]);
  });

  it('refuses bytes that do not match the dims, naming the tensor', () => {
    expect(() => toOrtTensor({ name: 'img', dtype: 'float32', dims: [3], data: new ArrayBuffer(8) }))
      .toThrow(/img: float32\[3\] needs 12 bytes, got 8/);
  });

  it('refuses output dtypes the wire cannot carry', () => {
    const t = new ort.Tensor('uint16', Uint16Array.from([1]), [1]);
    expect(() => fromOrtTensor('y', t)).toThrow(/dtype uint16 is not supported/);
  });

  it('reads the outputs of either onnxruntime-web build, each with a Tensor class of its own', () => {
    const jsep = new ort.Tensor('float32', Float32Array.from([7]), [1]);
    const cpuOnly = toOrtTensor({ name: 'x', dtype: 'float32', dims: [1], data: Float32Array.from([8]).buffer });
    expect(cpuOnly).not.toBeInstanceOf(ort.Tensor);
    const out = fromOrtOutputs(['a', 'b'], { a: jsep, b: cpuOnly });
    expect(out.map((t) => [...new Float32Array(t.data.buffer)])).toEqual([[7], [8]]);
    expect(() => fromOrtOutputs(['c'], { c: { nope: 1 } as never })).toThrow('output c: not a tensor');
  });

  it('builds feeds keyed by input name', () => {
    const feeds = toFeeds([
      { name: 'a', dtype: 'int32', dims: [1], data: Int32Array.from([5]).buffer },
      { name: 'b', dtype: 'uint8', dims: [], data: Uint8Array.from([9]).buffer },
    ]);
    expect(Object.keys(feeds)).toEqual(['a', 'b']);
    expect(feeds.b!.dims).toEqual([]);
  });
});
