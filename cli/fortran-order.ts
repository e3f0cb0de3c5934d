/**
 * Fortran-ordered .npy data read back in C order, a chunk of whole items at a time, without holding the file.
 *
 * In Fortran order the first (item) axis varies fastest, so one item's elements are spread over the whole file:
 * element (i, r) sits at (i + n * r), r being the Fortran index of the element within its item. A chunk of items
 * [a, b) is gathered in one pass over the file that takes elements a..b-1 of every run of n; the chunk is
 * bounded by `budgetBytes`, so a file larger than the budget takes several passes (the file is read
 * size / budget times, from the page cache after the first). Memory: one chunk buffer (the budget, or one item
 * when an item is larger), reused from pass to pass, plus a read block of a few MiB.
 */
import fs from 'node:fs';
import { AppError } from '../shared/errors.js';
import { elementCount, itemSize, type DType } from '../shared/tensor.js';

/** How much data a pass gathers by default: 64 MiB of items. */
export const FORTRAN_BUDGET_BYTES = 64 << 20;
const READ_BLOCK = 4 << 20;
/** Slices at least this long are read one by one rather than inside whole runs. */
const SLICE_READ = 64 << 10;

export interface ArrayOnDisk { file: string; dtype: DType; shape: number[]; dataOffset: number }

/** True when Fortran and C order lay the data out the same (at most one axis longer than 1). */
export function sameInBothOrders(shape: readonly number[]): boolean {
  return shape.filter((d) => d > 1).length <= 1;
}

function readFully(fd: number, into: Uint8Array, length: number, position: number, file: string): void {
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, into, got, length - got, position + got);
    if (n === 0) throw new AppError('INVALID_PAYLOAD', `${file}: the file ended early (truncated .npy data)`);
    got += n;
  }
}

/** Copies `count` elements of `size` bytes from src[srcByte..] (contiguous) to dst at element stride `stride` from dstElem. */
function scatter(src: Uint8Array, srcByte: number, dst: Uint8Array, dstElem: number, stride: number, count: number, size: number): void {
  if (size === 1) {
    for (let i = 0; i < count; i++) dst[dstElem + i * stride] = src[srcByte + i];
    return;
  }
  // Integer views copy bits as they are (a float view could canonicalise NaN payloads).
  const s = new Int32Array(src.buffer, src.byteOffset + srcByte, (count * size) / 4);
  const d = new Int32Array(dst.buffer, dst.byteOffset, dst.byteLength / 4);
  const words = size / 4;
  for (let i = 0; i < count; i++) {
    const to = (dstElem + i * stride) * words;
    for (let w = 0; w < words; w++) d[to + w] = s[i * words + w];
  }
}

/**
 * Yields the array's data in C order, in chunks of whole items of at most `budgetBytes` (one item at least).
 * The array's shape is its logical shape, as in the .npy header. Each chunk is a view of one buffer that the
 * next pass overwrites: copy what must outlive the next step of the iteration.
 */
export function* fortranToC(array: ArrayOnDisk, budgetBytes = FORTRAN_BUDGET_BYTES): Generator<Uint8Array> {
  const size = itemSize(array.dtype);
  const [n = 1, ...rest] = array.shape;
  const per = elementCount(rest); // elements per item
  if (n === 0 || per === 0) return;
  // C strides of the item's axes; the Fortran index walks them first axis fastest.
  const cStride = rest.map((_, j) => elementCount(rest.slice(j + 1)));
  const itemsPerChunk = Math.max(1, Math.min(n, Math.floor(budgetBytes / (per * size))));
  const runBytes = n * size;
  const buffer = new Uint8Array(itemsPerChunk * per * size);
  const fd = fs.openSync(array.file, 'r');
  try {
    for (let a = 0; a < n; a += itemsPerChunk) {
      const len = Math.min(itemsPerChunk, n - a);
      const out = buffer.subarray(0, len * per * size);
      const idx = new Array<number>(rest.length).fill(0);
      let c = 0; // C index within the item of the run being read
      const advance = () => {
        for (let j = 0; j < rest.length; j++) {
          idx[j]++;
          c += cStride[j];
          if (idx[j] < rest[j]) return;
          c -= rest[j] * cStride[j];
          idx[j] = 0;
        }
      };
      if (len * size >= SLICE_READ || runBytes > READ_BLOCK) {
        const slice = new Uint8Array(len * size);
        for (let r = 0; r < per; r++) {
          readFully(fd, slice, slice.byteLength, array.dataOffset + (r * n + a) * size, array.file);
          scatter(slice, 0, out, c, per, len, size);
          advance();
        }
      } else {
        const runsPerRead = Math.max(1, Math.floor(READ_BLOCK / runBytes));
        const block = new Uint8Array(Math.min(runsPerRead, per) * runBytes);
        for (let r0 = 0; r0 < per; r0 += runsPerRead) {
          const k = Math.min(runsPerRead, per - r0);
          readFully(fd, block, k * runBytes, array.dataOffset + r0 * runBytes, array.file);
          for (let j = 0; j < k; j++) {
            scatter(block, j * runBytes + a * size, out, c, per, len, size);
            advance();
          }
        }
      }
      yield out;
    }
  } finally {
    fs.closeSync(fd);
  }
}
