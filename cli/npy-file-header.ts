/**
 * The header of a .npy file on disk, as numpy writes it: unlike shared/npy.ts (what the server stores), this
 * also reads Fortran-ordered arrays, so the CLI can lay them out in C order before the upload.
 */
import fs from 'node:fs';
import { AppError } from '../shared/errors.js';
import { type DType, elementCount, itemSize } from '../shared/tensor.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Little-endian (or byte-order-free) descriptors of the dtypes in shared/tensor.ts. */
const DESCR: Record<string, DType> = {
  '<f4': 'float32', '<f8': 'float64', '<i8': 'int64', '<i4': 'int32',
  '|i1': 'int8', '<i1': 'int8', '|u1': 'uint8', '<u1': 'uint8', '|b1': 'bool', '<b1': 'bool',
};

export interface NpyFileHeader {
  file: string;
  dtype: DType;
  shape: number[];
  /** True when numpy saved it with `fortran_order: True` (first axis varies fastest). */
  fortran: boolean;
  /** Where the data starts in the file. */
  dataOffset: number;
}

/** Parses a .npy header from the file's first bytes; throws AppError naming `file` when it is not one numpy wrote. */
export function parseNpyFileHeader(bytes: Uint8Array, file: string): Omit<NpyFileHeader, 'file'> {
  const bad = (why: string) => new AppError('INVALID_PAYLOAD', `${file}: ${why}`);
  if (bytes.byteLength < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw bad('not a .npy file (bad magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  let start: number;
  let headerLen: number;
  if (major === 1) { start = 10; headerLen = view.getUint16(8, true); } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) throw bad('truncated .npy header');
    start = 12; headerLen = view.getUint32(8, true);
  } else throw bad(`unsupported .npy version ${major}`);
  if (bytes.byteLength < start + headerLen) throw bad('truncated .npy header');
  const header = new TextDecoder('latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw bad('malformed .npy header');
  const dtype = DESCR[descr];
  if (!dtype) {
    const hint = descr.startsWith('>') ? `; it is big-endian: save it with arr.astype('<${descr.slice(1)}')` : '';
    throw bad(`unsupported .npy dtype '${descr}' (float32, float64, int64, int32, int8, uint8 or bool, little-endian)${hint}`);
  }
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad('malformed .npy shape');
  return { dtype, shape, fortran: fortran === 'True', dataOffset: start + headerLen };
}

/**
 * Reads the header of the .npy file at `file` (its first bytes only) and checks that the file holds exactly
 * the data its header announces.
 */
export function readNpyFileHeader(file: string): NpyFileHeader {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    // The header length sits in bytes 8..12; numpy keeps headers small, so 64 KiB holds any it writes.
    const first = new Uint8Array(Math.min(size, 1 << 16));
    fs.readSync(fd, first, 0, first.byteLength, 0);
    const head = parseNpyFileHeader(first, file);
    const want = elementCount(head.shape) * itemSize(head.dtype);
    if (size - head.dataOffset !== want) {
      throw new AppError('INVALID_PAYLOAD', `${file}: shape [${head.shape.join(', ')}] of ${head.dtype} needs ${want} data bytes, the file has ${size - head.dataOffset}`);
    }
    return { file, ...head };
  } finally {
    fs.closeSync(fd);
  }
}
