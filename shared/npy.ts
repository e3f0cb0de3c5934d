/**
 * NumPy .npy files (format versions 1 to 3), the data format researchers already use.
 * Only C-order little-endian arrays of the dtypes in tensor.ts are read; anything else is refused by name.
 */
import { type DType, elementCount, itemSize } from './tensor.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const DESCR_TO_DTYPE: Record<string, DType> = {
  '<f4': 'float32', '<f8': 'float64', '<i8': 'int64', '<i4': 'int32',
  '|i1': 'int8', '<i1': 'int8', '|u1': 'uint8', '<u1': 'uint8', '|b1': 'bool', '<b1': 'bool',
};
const DTYPE_TO_DESCR: Record<DType, string> = {
  float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', int8: '|i1', uint8: '|u1', bool: '|b1',
};

export interface NpyArray {
  dtype: DType;
  shape: number[];
  /** Offset of the data in the file, so a slice of items can be read without loading the rest. */
  dataOffset: number;
  data: Uint8Array;
}

export class NpyError extends Error {}

/** Parses the header of a .npy file; needs only the first bytes (header length is in bytes 8..12). */
export function parseNpyHeader(bytes: Uint8Array): Omit<NpyArray, 'data'> {
  if (bytes.byteLength < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new NpyError('not a .npy file (bad magic)');
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) { headerLen = view.getUint16(8, true); start = 10; } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) throw new NpyError('truncated .npy header');
    headerLen = view.getUint32(8, true); start = 12;
  } else throw new NpyError(`unsupported .npy version ${major}`);
  if (bytes.byteLength < start + headerLen) throw new NpyError('truncated .npy header');
  const header = new TextDecoder('latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new NpyError('malformed .npy header');
  const dtype = DESCR_TO_DTYPE[descr];
  if (!dtype) throw new NpyError(`unsupported .npy dtype '${descr}' (use float32, float64, int64, int32, int8, uint8 or bool, little-endian)`);
  if (fortran === 'True') throw new NpyError('Fortran-order .npy is not supported; save with np.ascontiguousarray');
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new NpyError('malformed .npy shape');
  return { dtype, shape, dataOffset: start + headerLen };
}

/** Parses a whole .npy file; the data is a view into `bytes`. */
export function readNpy(bytes: Uint8Array): NpyArray {
  const head = parseNpyHeader(bytes);
  const size = elementCount(head.shape) * itemSize(head.dtype);
  if (bytes.byteLength < head.dataOffset + size) {
    throw new NpyError(`truncated .npy data: shape [${head.shape}] needs ${size} bytes, file has ${bytes.byteLength - head.dataOffset}`);
  }
  return { ...head, data: bytes.subarray(head.dataOffset, head.dataOffset + size) };
}

/** Builds the header (version 1.0, padded so data starts on a 64-byte boundary). */
export function npyHeader(dtype: DType, shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${DTYPE_TO_DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + dict.length);
  out.set(MAGIC, 0);
  out[6] = 1; out[7] = 0;
  new DataView(out.buffer).setUint16(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  return out;
}

/** Serialises an array as a .npy file. */
export function writeNpy(dtype: DType, shape: readonly number[], data: Uint8Array): Uint8Array {
  const head = npyHeader(dtype, shape);
  const out = new Uint8Array(head.byteLength + data.byteLength);
  out.set(head, 0);
  out.set(data, head.byteLength);
  return out;
}
