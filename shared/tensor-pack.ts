/**
 * Packs a set of named tensors into one binary blob and back: a little-endian u32 header length,
 * a JSON header [{name, dtype, dims}], then each tensor's bytes in order. Used to keep a replica's
 * outputs in one store row.
 */
import { type DType, type Tensor, elementCount, itemSize } from './tensor.js';

export function packTensors(tensors: readonly Tensor[]): Uint8Array {
  const header = new TextEncoder().encode(JSON.stringify(tensors.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims }))));
  let size = 4 + header.byteLength;
  for (const t of tensors) size += t.data.byteLength;
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, header.byteLength, true);
  out.set(header, 4);
  let at = 4 + header.byteLength;
  for (const t of tensors) { out.set(t.data, at); at += t.data.byteLength; }
  return out;
}

export function unpackTensors(blob: Uint8Array): Tensor[] {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const headerLen = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(blob.subarray(4, 4 + headerLen))) as { name: string; dtype: DType; dims: number[] }[];
  let at = 4 + headerLen;
  return header.map((h) => {
    const size = elementCount(h.dims) * itemSize(h.dtype);
    const data = blob.subarray(at, at + size);
    at += size;
    return { ...h, data };
  });
}
