import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../shared/npy.js';
import type { TensorSpec } from '../shared/protocol.js';
import { bytesOf, rawNpy, toFortran } from '../test/helpers/npy-fixtures.js';
import { npyInput } from './npy-input.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-npy-input-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let files = 0;
function save(bytes: Uint8Array): string {
  const file = path.join(dir, `in-${files++}.npy`);
  fs.writeFileSync(file, bytes);
  return file;
}

async function upload(file: string, spec: TensorSpec, budget?: number): Promise<{ note: string | null; bytes: Uint8Array }> {
  const prepared = npyInput(file, spec, { fortranBudgetBytes: budget });
  const parts: Uint8Array[] = [];
  for await (const chunk of prepared.body()) parts.push(chunk);
  return { note: prepared.note, bytes: new Uint8Array(Buffer.concat(parts)) };
}

const f32 = (name: string, shape: (number | string)[]): TensorSpec => ({ name, dtype: 'float32', shape });
const values = (n: number) => Array.from({ length: n }, (_, i) => (i % 7 === 3 ? 0.1 * i : i / 3) - 2);

describe('npyInput', () => {
  it('sends a file that needs nothing byte for byte, and says nothing', async () => {
    const npy = writeNpy('float32', [3, 4], bytesOf(Float32Array.from(values(12))));
    const got = await upload(save(npy), f32('x', ['n', 4]));
    expect(got.note).toBeNull();
    expect(got.bytes).toEqual(npy);
  });

  it('converts a float64 C-order array to float32, rounding as numpy does', async () => {
    const v = values(12);
    const got = await upload(save(rawNpy({ descr: '<f8', shape: [3, 4], data: bytesOf(Float64Array.from(v)) })), f32('x', ['n', 4]));
    expect(got.note).toBe("input x: float64 -> float32 (numpy's default dtype)");
    expect(got.bytes).toEqual(writeNpy('float32', [3, 4], bytesOf(Float32Array.from(v))));
  });

  it.each([
    ['one pass', 1 << 20],
    ['one item a pass', 1],
  ])('converts a float64 Fortran-order array to float32 in C order (%s)', async (_, budget) => {
    const shape = [3, 2, 4];
    const v = values(24);
    const fortran = toFortran(Float64Array.from(v), shape, (n) => new Float64Array(n));
    const got = await upload(save(rawNpy({ descr: '<f8', fortran: true, shape, data: bytesOf(fortran) })), f32('x', ['n', 2, 4]), budget);
    expect(got.note).toBe("input x: float64 -> float32 (numpy's default dtype), Fortran order -> C order");
    expect(got.bytes).toEqual(writeNpy('float32', shape, bytesOf(Float32Array.from(v))));
  });

  it('lays out a Fortran-order float32 array in C order without changing a value', async () => {
    const shape = [4, 3];
    const c = Float32Array.from(values(12));
    const fortran = toFortran(c, shape, (n) => new Float32Array(n));
    const got = await upload(save(rawNpy({ descr: '<f4', fortran: true, shape, data: bytesOf(fortran), version: 2 })), f32('x', ['n', 3]));
    expect(got.note).toBe('input x: Fortran order -> C order');
    expect(got.bytes).toEqual(writeNpy('float32', shape, bytesOf(c)));
  });

  it('rewrites only the header of a Fortran-order array whose layout is the same in C order', async () => {
    const data = bytesOf(Float32Array.from(values(5)));
    const got = await upload(save(rawNpy({ descr: '<f4', fortran: true, shape: [5, 1], data })), f32('x', ['n', 1]));
    expect(got.bytes).toEqual(writeNpy('float32', [5, 1], data));
  });

  it('widens int32 token ids for an int64 input, Fortran order included', async () => {
    const shape = [2, 5];
    const ids = Int32Array.from([101, 7592, -1, 2088, 102, 101, 2023, 0, 2147483647, -2147483648]);
    const fortran = toFortran(ids, shape, (n) => new Int32Array(n));
    const got = await upload(save(rawNpy({ descr: '<i4', fortran: true, shape, data: bytesOf(fortran) })), { name: 'ids', dtype: 'int64', shape: ['n', 5] });
    expect(got.note).toBe('input ids: int32 -> int64 (token ids), Fortran order -> C order');
    expect(got.bytes).toEqual(writeNpy('int64', shape, bytesOf(BigInt64Array.from(Array.from(ids, BigInt)))));
  });

  it('narrows int64 to int32 when every value fits', async () => {
    const got = await upload(save(writeNpy('int64', [2, 2], bytesOf(BigInt64Array.from([1n, -2n, 3n, 2147483647n])))), { name: 't', dtype: 'int32', shape: ['n', 2] });
    expect(got.note).toBe('input t: int64 -> int32 (each value checked to fit)');
    expect(got.bytes).toEqual(writeNpy('int32', [2, 2], bytesOf(Int32Array.from([1, -2, 3, 2147483647]))));
  });

  it('refuses, while streaming, a value the model\'s dtype cannot hold, naming the item', async () => {
    const v = new Float64Array(6 * 4);
    v[4 * 5 + 2] = 1e300;
    const file = save(rawNpy({ descr: '<f8', shape: [6, 4], data: bytesOf(v) }));
    await expect(upload(file, f32('x', ['n', 4]))).rejects.toThrow("input x: item 5, element 2 is 1e+300, beyond float32's range");
    const big = save(writeNpy('int64', [3], bytesOf(BigInt64Array.from([1n, 2n, 1n << 40n]))));
    await expect(upload(big, { name: 't', dtype: 'int32', shape: ['n'] })).rejects.toThrow("input t: item 2, element 0 is 1099511627776, beyond int32's range");
  });

  it('leaves dtypes it does not convert to the server, which names both', async () => {
    const npy = writeNpy('uint8', [2, 4], new Uint8Array(8));
    const got = await upload(save(npy), f32('x', ['n', 4]));
    expect(got.note).toBeNull();
    expect(got.bytes).toEqual(npy);
  });

  it('refuses a file it cannot read, naming it and saying why', () => {
    const be = save(rawNpy({ descr: '>f8', shape: [2], data: new Uint8Array(16) }));
    expect(() => npyInput(be, f32('x', ['n']))).toThrow(`${be}: unsupported .npy dtype '>f8' (float32, float64, int64, int32, int8, uint8 or bool, little-endian); it is big-endian: save it with arr.astype('<f8')`);
    const short = save(rawNpy({ descr: '<f8', shape: [2, 3], data: new Uint8Array(40) }));
    expect(() => npyInput(short, f32('x', ['n', 3]))).toThrow(`${short}: shape [2, 3] of float64 needs 48 data bytes, the file has 40`);
    const text = save(new TextEncoder().encode('a,b\n1,2\n'));
    expect(() => npyInput(text, f32('x', ['n']))).toThrow(`${text}: not a .npy file (bad magic)`);
  });
});
