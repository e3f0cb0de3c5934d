import { describe, expect, it } from 'vitest';
import { compareOutputs, compareValues } from './compare.js';
import type { Tensor } from './tensor.js';

const f32 = (name: string, values: number[], dims = [values.length]): Tensor => ({
  name, dtype: 'float32', dims, data: new Uint8Array(Float32Array.from(values).buffer),
});
const tol = { rtol: 1e-3, atol: 1e-4 };

describe('compare', () => {
  it('agrees within rtol and atol', () => {
    expect(compareValues([1, 100, 0], [1.0009, 100.09, 0.00009], tol)).toBeNull();
  });

  it('disagrees beyond them and names the worst element', () => {
    const r = compareValues([1, 2, 3], [1, 2.5, 3.01], tol);
    expect(r).toMatch(/2 of 3 values differ/);
    expect(r).toMatch(/worst at 1: 2 vs 2.5/);
  });

  it('treats NaN on one side only as a disagreement, NaN on both as agreement', () => {
    expect(compareValues([NaN, 1], [NaN, 1], tol)).toBeNull();
    expect(compareValues([NaN, 1], [0, 1], tol)).toMatch(/1 of 2/);
    expect(compareValues([Infinity], [Infinity], tol)).toBeNull();
    expect(compareValues([Infinity], [1e38], tol)).not.toBeNull();
  });

  it('compares named outputs, with dims and dtype', () => {
    expect(compareOutputs([f32('y', [1, 2])], [f32('y', [1, 2])], tol)).toEqual({ verdict: 'agree' });
    expect(compareOutputs([f32('y', [1, 2])], [f32('z', [1, 2])], tol)).toMatchObject({ verdict: 'disagree', detail: 'output y missing' });
    expect(compareOutputs([f32('y', [1, 2], [2])], [f32('y', [1, 2], [1, 2])], tol)).toMatchObject({ verdict: 'disagree' });
    const i64: Tensor = { name: 'y', dtype: 'int64', dims: [2], data: new Uint8Array(BigInt64Array.from([1n, 2n]).buffer) };
    expect(compareOutputs([f32('y', [1, 2])], [i64], tol)).toMatchObject({ verdict: 'disagree', detail: 'y: dtype float32 vs int64' });
    expect(compareOutputs([i64], [i64], { rtol: 0, atol: 0 })).toEqual({ verdict: 'agree' });
  });
});
