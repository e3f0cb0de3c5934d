/**
 * Conversions between our tensors (dtype, dims, bytes) and onnxruntime-node's, for the server's own runs
 * (validation, canaries) and the headless worker.
 */
import * as ort from 'onnxruntime-node';
import { type DType, type Tensor, alignedCopy, asBytes } from '../../shared/tensor.js';

/** Turns wire bytes into an onnxruntime tensor (typed arrays need aligned buffers, so bytes are copied). */
export function toOrtTensor(dtype: DType, dims: number[], data: ArrayBuffer | Uint8Array): ort.Tensor {
  const buf = alignedCopy(asBytes(data));
  const views: Record<DType, () => ArrayBufferView> = {
    float32: () => new Float32Array(buf), float64: () => new Float64Array(buf), int64: () => new BigInt64Array(buf),
    int32: () => new Int32Array(buf), int8: () => new Int8Array(buf), uint8: () => new Uint8Array(buf), bool: () => new Uint8Array(buf),
  };
  return new ort.Tensor(dtype, views[dtype]() as never, dims);
}

export function fromOrtTensor(name: string, t: ort.Tensor): Tensor {
  const data = t.data as ArrayBufferView;
  return { name, dtype: t.type as DType, dims: Array.from(t.dims), data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}
