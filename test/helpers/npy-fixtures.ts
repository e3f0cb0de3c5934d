/**
 * .npy files as numpy writes them, built by hand for tests: any descr, Fortran order, version 1 or 2 headers,
 * and the Fortran-order layout of an array computed the plain way (index by index).
 */

export interface RawNpy {
  /** numpy's dtype descriptor, e.g. '<f8', '<i4', '>f4'. */
  descr: string;
  fortran?: boolean;
  shape: number[];
  /** The data bytes, laid out as the header says. */
  data: Uint8Array;
  version?: 1 | 2;
}

/** The bytes of a .npy file with exactly this header and data (header padded to 64 bytes as numpy does). */
export function rawNpy(a: RawNpy): Uint8Array {
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  let dict = `{'descr': '${a.descr}', 'fortran_order': ${a.fortran ? 'True' : 'False'}, 'shape': ${shape}, }`;
  const pre = a.version === 2 ? 12 : 10;
  dict += ' '.repeat((64 - ((pre + dict.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(pre + dict.length + a.data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, a.version ?? 1, 0]);
  const view = new DataView(out.buffer);
  if (a.version === 2) view.setUint32(8, dict.length, true);
  else view.setUint16(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[pre + i] = dict.charCodeAt(i);
  out.set(a.data, pre + dict.length);
  return out;
}

/** The bytes of a typed array. */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}

/**
 * Lays out C-order elements of `shape` in Fortran order (first axis fastest), element by element: the
 * element at C multi-index (i0..ik) goes to Fortran offset i0 + d0 * (i1 + d1 * (...)).
 */
export function toFortran<T extends { length: number; [i: number]: number | bigint }>(c: T, shape: number[], make: (n: number) => T): T {
  const out = make(c.length);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < c.length; flat++) {
    let rem = flat;
    for (let j = shape.length - 1; j >= 0; j--) { idx[j] = rem % shape[j]; rem = Math.floor(rem / shape[j]); }
    let f = 0;
    for (let j = shape.length - 1; j >= 0; j--) f = f * shape[j] + idx[j];
    out[f] = c[flat];
  }
  return out;
}
