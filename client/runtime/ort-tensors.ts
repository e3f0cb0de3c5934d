/**
 * Converts between tensors as they travel (dtype, dims, little-endian bytes) and onnxruntime-web tensors.
 * Typed arrays need their offset aligned to the element size, so unaligned views are copied first.
 */
import * as ort from 'onnxruntime-web/wasm';
import type { WireTensor } from '../../shared/protocol.js';
import { type DType, type Tensor, DTYPES, alignedCopy, asBytes, itemSize, tensorProblem } from '../../shared/tensor.js';

function aligned(bytes: Uint8Array, size: number): { buffer: ArrayBuffer; offset: number } {
  if (bytes.byteOffset % size === 0 && bytes.buffer instanceof ArrayBuffer) {
    return { buffer: bytes.buffer, offset: bytes.byteOffset };
  }
  return { buffer: alignedCopy(bytes), offset: 0 };
}

/** Builds an ort.Tensor from a wire tensor; throws with the tensor's name when bytes and dims disagree. */
export function toOrtTensor(t: WireTensor): ort.Tensor {
  const dtype = t.dtype as DType;
  const bytes = asBytes(t.data);
  const problem = tensorProblem({ name: t.name, dtype, dims: t.dims, data: bytes });
  if (problem) throw new Error(problem);
  const { buffer, offset } = aligned(bytes, itemSize(dtype));
  const n = bytes.byteLength / itemSize(dtype);
  switch (dtype) {
    case 'float32': return new ort.Tensor('float32', new Float32Array(buffer, offset, n), t.dims);
    case 'float64': return new ort.Tensor('float64', new Float64Array(buffer, offset, n), t.dims);
    case 'int64': return new ort.Tensor('int64', new BigInt64Array(buffer, offset, n), t.dims);
    case 'int32': return new ort.Tensor('int32', new Int32Array(buffer, offset, n), t.dims);
    case 'int8': return new ort.Tensor('int8', new Int8Array(buffer, offset, n), t.dims);
    case 'uint8': return new ort.Tensor('uint8', new Uint8Array(buffer, offset, n), t.dims);
    case 'bool': return new ort.Tensor('bool', new Uint8Array(buffer, offset, n), t.dims);
    default: throw new Error(`input ${t.name}: unsupported dtype ${String(t.dtype)}`);
  }
}

/** Feeds for session.run, keyed by input name. */
export function toFeeds(inputs: readonly WireTensor[]): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const t of inputs) feeds[t.name] = toOrtTensor(t);
  return feeds;
}

function isDType(s: string): s is DType {
  return (DTYPES as string[]).includes(s);
}

/**
 * Copies an output into a tensor of our own. The copy matters: outputs may be views into memory that
 * onnxruntime reuses, and the wire wants a buffer that holds exactly this tensor.
 */
export function fromOrtTensor(name: string, t: ort.Tensor): Tensor {
  if (t.location !== 'cpu') throw new Error(`output ${name}: expected data on the CPU, found it on ${t.location}`);
  if (!isDType(t.type)) throw new Error(`output ${name}: dtype ${t.type} is not supported (use float32, float64, int64, int32, int8, uint8 or bool)`);
  const data = t.data as ArrayBufferView;
  const bytes = new Uint8Array(data.byteLength);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return { name, dtype: t.type, dims: [...t.dims], data: bytes };
}

/** A tensor of either onnxruntime-web build: each has a Tensor class of its own (see ort-builds.ts). */
function isOrtTensor(value: unknown): value is ort.Tensor {
  return typeof value === 'object' && value !== null && 'dims' in value && 'type' in value && 'location' in value;
}

/** Converts session.run's result, in the session's output order. */
export function fromOrtOutputs(names: readonly string[], out: ort.InferenceSession.OnnxValueMapType): Tensor[] {
  return names.map((name) => {
    const value = out[name];
    if (!isOrtTensor(value)) throw new Error(`output ${name}: not a tensor`);
    return fromOrtTensor(name, value);
  });
}
