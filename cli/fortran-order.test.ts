import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bytesOf, toFortran } from '../test/helpers/npy-fixtures.js';
import { fortranToC, sameInBothOrders } from './fortran-order.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-fortran-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes Fortran-order data after a 16-byte stand-in header and reads it back in C order. */
function roundTrip(c: Float32Array | Float64Array | Uint8Array, shape: number[], budget: number): Uint8Array {
  const make = (n: number) => new (c.constructor as Float32ArrayConstructor)(n) as typeof c;
  const fortran = toFortran(c, shape, make);
  const file = path.join(dir, `a-${shape.join('x')}-${budget}.bin`);
  fs.writeFileSync(file, Buffer.concat([Buffer.alloc(16, 0xee), bytesOf(fortran)]));
  const dtype = c instanceof Float32Array ? 'float32' : c instanceof Float64Array ? 'float64' : 'uint8';
  const chunks = Array.from(fortranToC({ file, dtype, shape, dataOffset: 16 }, budget), (c) => c.slice());
  return new Uint8Array(Buffer.concat(chunks));
}

const seq = (n: number) => Array.from({ length: n }, (_, i) => i * 1.5 - 7);

describe('fortranToC', () => {
  it.each([
    [[4, 3], 1 << 20],
    [[2, 3, 4], 1 << 20],
    [[5, 2, 3, 2], 1 << 20],
    [[5, 2, 3, 2], 48], // two items a pass: three passes over the file
    [[7, 3, 2], 1], // less than an item: one item a pass
  ])('gives the C order of a Fortran-order float32 array of shape %j (budget %i bytes)', (shape, budget) => {
    const c = Float32Array.from(seq(shape.reduce((a, b) => a * b)));
    expect(roundTrip(c, shape, budget)).toEqual(bytesOf(c));
  });

  it('copies float64 and one-byte elements bit for bit, NaN payloads included', () => {
    const f = new Float64Array(24);
    const words = new Int32Array(f.buffer);
    for (let i = 0; i < words.length; i++) words[i] = (i * 2654435761) | 0;
    expect(roundTrip(f, [3, 2, 4], 64)).toEqual(bytesOf(f));
    const u = Uint8Array.from({ length: 30 }, (_, i) => (i * 37) % 256);
    expect(roundTrip(u, [5, 3, 2], 12)).toEqual(bytesOf(u));
  });

  it('reads long slices one by one when a pass takes many items', () => {
    const shape = [20000, 3];
    const c = Float32Array.from(seq(60000));
    // Compared as Buffers: a deep equality over 240 kB takes seconds.
    expect(Buffer.from(roundTrip(c, shape, 1 << 20)).equals(Buffer.from(c.buffer))).toBe(true);
    expect(Buffer.from(roundTrip(c, shape, 12 * 5000)).equals(Buffer.from(c.buffer))).toBe(true);
  });

  it('yields chunks of whole items within the budget, in one buffer reused from pass to pass', () => {
    const shape = [10, 4];
    const file = path.join(dir, 'chunks.bin');
    fs.writeFileSync(file, new Uint8Array(160));
    const chunks = [...fortranToC({ file, dtype: 'float32', shape, dataOffset: 0 }, 40)];
    expect(chunks.map((c) => c.byteLength)).toEqual([32, 32, 32, 32, 32]);
    expect(new Set(chunks.map((c) => c.buffer)).size).toBe(1);
  });

  it('knows when both orders coincide', () => {
    expect(sameInBothOrders([7])).toBe(true);
    expect(sameInBothOrders([7, 1, 1])).toBe(true);
    expect(sameInBothOrders([1, 5])).toBe(true);
    expect(sameInBothOrders([2, 5])).toBe(false);
  });
});
