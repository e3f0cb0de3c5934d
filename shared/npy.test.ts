import { describe, expect, it } from 'vitest';
import { NpyError, parseNpyHeader, readNpy, writeNpy } from './npy.js';
import { DTYPES, itemSize } from './tensor.js';

describe('npy', () => {
  it.each(DTYPES)('round-trips %s', (dtype) => {
    const shape = [3, 2, 2];
    const data = Uint8Array.from({ length: 12 * itemSize(dtype) }, (_, i) => (i * 7) % 251);
    const file = writeNpy(dtype, shape, data);
    const back = readNpy(file);
    expect(back.dtype).toBe(dtype);
    expect(back.shape).toEqual(shape);
    expect(Array.from(back.data)).toEqual(Array.from(data));
    expect(back.dataOffset % 64).toBe(0);
  });

  it('writes a header numpy reads: one-element shapes keep their comma', () => {
    const text = new TextDecoder().decode(writeNpy('float32', [5], new Uint8Array(20)).subarray(10, 80));
    expect(text).toContain("'shape': (5,)");
    expect(text).toContain("'descr': '<f4'");
  });

  it('reads version 2 headers', () => {
    const v1 = writeNpy('int32', [2], new Uint8Array(8));
    const headerLen = new DataView(v1.buffer).getUint16(8, true);
    const v2 = new Uint8Array(v1.byteLength + 2);
    v2.set(v1.subarray(0, 8));
    v2[6] = 2;
    new DataView(v2.buffer).setUint32(8, headerLen, true);
    v2.set(v1.subarray(10), 12);
    expect(parseNpyHeader(v2)).toMatchObject({ dtype: 'int32', shape: [2], dataOffset: 12 + headerLen });
  });

  it('refuses what it cannot read, by name', () => {
    expect(() => readNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))).toThrow(/bad magic/);
    const be = writeNpy('float32', [2], new Uint8Array(8));
    be.set(new TextEncoder().encode("'descr': '>f4'"), 11);
    expect(() => readNpy(be)).toThrow(/unsupported .npy dtype '>f4'/);
    const fortran = writeNpy('float32', [2, 2], new Uint8Array(16));
    const s = new TextDecoder('latin1').decode(fortran).replace("'fortran_order': False", "'fortran_order': True ");
    expect(() => readNpy(Uint8Array.from(s, (c: string) => c.charCodeAt(0)))).toThrow(/Fortran/);
    expect(() => readNpy(writeNpy('float32', [4], new Uint8Array(16)).subarray(0, 70))).toThrow(NpyError);
  });
});
