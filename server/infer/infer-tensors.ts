/**
 * An interactive request's tensors: base64 JSON in, checked against the model before any worker sees them (names,
 * dtypes, ranks, fixed dims, byte counts), and the answer's tensors out.
 */
import { z } from 'zod';
import { AppError } from '../../shared/errors.js';
import { INFER_MAX_BINARY_BYTES, INFER_MAX_BYTES, type InferTensor } from '../../shared/infer.js';
import { MAX_DIMS, MAX_OUTPUTS, type TensorSpec } from '../../shared/protocol.js';
import { DTYPES, type Tensor, elementCount, itemSize } from '../../shared/tensor.js';

const fmtShape = (s: readonly (number | string)[]) => `[${s.join(', ')}]`;

/** The request's inputs (base64 JSON) as tensors in the model's order; a 400 naming the input for anything that does not fit. */
export function decodeInputs(inputs: Record<string, InferTensor>, specs: readonly TensorSpec[]): Tensor[] {
  const tensors = Object.entries(inputs).map(([name, t]) => {
    const data = Buffer.from(t.data, 'base64');
    return { name, dtype: t.dtype as Tensor['dtype'], dims: [...t.dims], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  });
  return checkInputs(tensors, specs, INFER_MAX_BYTES);
}

const packedHeaderSchema = z.array(z.object({
  name: z.string().min(1).max(256),
  dtype: z.enum(DTYPES as [string, ...string[]]),
  dims: z.array(z.number().int().min(0).max(2 ** 31)).max(MAX_DIMS),
})).max(MAX_OUTPUTS);

/** The binary variant's inputs (packed: u32 header length, JSON header, bytes), checked like the JSON ones. */
export function decodePacked(body: Uint8Array, specs: readonly TensorSpec[]): Tensor[] {
  const bad = (why: string) => new AppError('INVALID_PAYLOAD', `the packed tensors are malformed: ${why}`);
  if (body.byteLength < 4) throw bad('shorter than its header length');
  const headerLen = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0, true);
  if (headerLen > 64 * 1024 || 4 + headerLen > body.byteLength) throw bad(`a header of ${headerLen} bytes`);
  let header: unknown;
  try { header = JSON.parse(new TextDecoder().decode(body.subarray(4, 4 + headerLen))); } catch { throw bad('its header is not JSON'); }
  const parsed = packedHeaderSchema.safeParse(header);
  if (!parsed.success) throw bad(parsed.error.issues[0]?.message ?? 'its header');
  let at = 4 + headerLen;
  const tensors = parsed.data.map((h) => {
    const size = elementCount(h.dims) * itemSize(h.dtype as Tensor['dtype']);
    if (at + size > body.byteLength) throw bad(`${h.name} needs ${size} bytes, the body has ${body.byteLength - at} left`);
    const data = body.subarray(at, at + size);
    at += size;
    return { name: h.name, dtype: h.dtype as Tensor['dtype'], dims: h.dims, data };
  });
  if (at !== body.byteLength) throw bad(`${body.byteLength - at} bytes after the last tensor`);
  return checkInputs(tensors, specs, INFER_MAX_BINARY_BYTES);
}

/** Tensors checked against the model's inputs (names, dtypes, ranks, fixed dims, byte counts), in its order. */
function checkInputs(tensors: Tensor[], specs: readonly TensorSpec[], maxBytes: number): Tensor[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const unknown = tensors.map((t) => t.name).filter((n) => !specs.some((s) => s.name === n));
  if (unknown.length) throw new AppError('SHAPE_MISMATCH', `the model has no input ${unknown.join(', ')} (it takes ${specs.map((s) => s.name).join(', ')})`);
  let total = 0;
  return specs.map((spec) => {
    const t = byName.get(spec.name);
    if (!t) throw new AppError('SHAPE_MISMATCH', `input ${spec.name} is missing (the model takes ${specs.map((s) => s.name).join(', ')})`);
    if (t.dtype !== spec.dtype) throw new AppError('SHAPE_MISMATCH', `input ${spec.name}: dtype ${t.dtype}, the model takes ${spec.dtype}`);
    if (spec.shape.length > 0 && t.dims.length !== spec.shape.length) {
      throw new AppError('SHAPE_MISMATCH', `input ${spec.name}: dims ${fmtShape(t.dims)}, the model takes ${fmtShape(spec.shape)}`);
    }
    spec.shape.forEach((want, i) => {
      if (typeof want === 'number' && want > 0 && t.dims[i] !== want) {
        throw new AppError('SHAPE_MISMATCH', `input ${spec.name}: dims ${fmtShape(t.dims)}, the model takes ${fmtShape(spec.shape)}`);
      }
    });
    const want = elementCount(t.dims) * itemSize(t.dtype);
    if (t.data.byteLength !== want) {
      throw new AppError('SHAPE_MISMATCH', `input ${spec.name}: ${t.data.byteLength} bytes of data, dims ${fmtShape(t.dims)} of ${t.dtype} take ${want}`);
    }
    total += t.data.byteLength;
    if (total > maxBytes) throw new AppError('TOO_LARGE', `the inputs hold more than ${maxBytes} bytes; submit a batch job instead`);
    return t;
  });
}

/** The answer's tensors as the REST body carries them. */
export function encodeOutputs(outputs: readonly Tensor[]): Record<string, InferTensor> {
  return Object.fromEntries(outputs.map((t) => [t.name, { dtype: t.dtype, dims: t.dims, data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64') }]));
}

/** Whether a worker's outputs fit the model's declared outputs (names, dtypes, ranks, fixed dims); null when they do. */
export function answerProblem(outputs: readonly Tensor[], specs: readonly TensorSpec[]): string | null {
  if (outputs.length !== specs.length) return `expected ${specs.length} outputs, got ${outputs.length}`;
  for (const t of outputs) {
    const spec = specs.find((s) => s.name === t.name);
    if (!spec) return `unexpected output ${t.name}`;
    if (t.dtype !== spec.dtype) return `output ${t.name}: dtype ${t.dtype}, the model declares ${spec.dtype}`;
    if (t.data.byteLength !== elementCount(t.dims) * itemSize(t.dtype)) return `output ${t.name}: ${t.data.byteLength} bytes for dims [${t.dims}]`;
    if (spec.shape.length > 0 && t.dims.length !== spec.shape.length) return `output ${t.name}: rank ${t.dims.length}, the model declares ${fmtShape(spec.shape)}`;
  }
  return null;
}
