/**
 * Tensors as they travel and rest: a dtype from a closed list, dims, and raw little-endian bytes.
 * Pure TypeScript (no Node, no DOM) so the server, the page and the headless worker share one definition.
 */
export const DType = {
  float32: 'float32',
  float64: 'float64',
  int64: 'int64',
  int32: 'int32',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
} as const;
export type DType = (typeof DType)[keyof typeof DType];

export const DTYPES = Object.values(DType) as DType[];

const ITEM_SIZE: Record<DType, number> = {
  float32: 4, float64: 8, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1,
};

/** Bytes per element of a dtype. */
export function itemSize(dtype: DType): number {
  return ITEM_SIZE[dtype];
}

/** Number of elements of a shape; [] is a scalar of one element. */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** A tensor with its bytes; `data` is a view, not necessarily the whole of its buffer. */
export interface Tensor {
  name: string;
  dtype: DType;
  dims: number[];
  data: Uint8Array;
}

/** Reads binary as received: socket.io gives a Buffer in Node and an ArrayBuffer in the browser. */
export function asBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** Copies bytes into a fresh, aligned buffer (typed-array views need their offset aligned). */
export function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

/** Numeric values of a tensor as doubles, for comparison (int64 through BigInt, exact up to 2^53). */
export function toNumbers(t: Pick<Tensor, 'dtype' | 'data'>): Float64Array | number[] {
  const buf = t.data.byteOffset % 8 === 0 ? t.data.buffer : alignedCopy(t.data);
  const off = t.data.byteOffset % 8 === 0 ? t.data.byteOffset : 0;
  const n = t.data.byteLength / itemSize(t.dtype);
  switch (t.dtype) {
    case 'float32': return Float64Array.from(new Float32Array(buf, off, n));
    case 'float64': return new Float64Array(buf, off, n);
    case 'int32': return Float64Array.from(new Int32Array(buf, off, n));
    case 'int8': return Float64Array.from(new Int8Array(buf, off, n));
    case 'uint8': case 'bool': return Float64Array.from(new Uint8Array(buf, off, n));
    case 'int64': return Array.from(new BigInt64Array(buf, off, n), Number);
  }
}

/** Checks that bytes and dims agree; returns a reason or null. */
export function tensorProblem(t: Tensor): string | null {
  if (t.dims.some((d) => !Number.isInteger(d) || d < 0)) return `tensor ${t.name}: dims must be non-negative integers`;
  const want = elementCount(t.dims) * itemSize(t.dtype);
  if (t.data.byteLength !== want) {
    return `tensor ${t.name}: ${t.dtype}[${t.dims.join(',')}] needs ${want} bytes, got ${t.data.byteLength}`;
  }
  return null;
}
