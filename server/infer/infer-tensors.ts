/**
 * An interactive request's tensors: base64 JSON in, checked against the model before any worker sees them (names,
 * dtypes, ranks, fixed dims, byte counts), and the answer's tensors out.
 */
import { AppError } from '../../shared/errors.js';
import { INFER_MAX_BYTES, type InferTensor } from '../../shared/infer.js';
import type { TensorSpec } from '../../shared/protocol.js';
import { type Tensor, elementCount, itemSize } from '../../shared/tensor.js';

const fmtShape = (s: readonly (number | string)[]) => `[${s.join(', ')}]`;

/** The request's inputs as tensors in the model's order; a 400 naming the input for anything that does not fit. */
export function decodeInputs(inputs: Record<string, InferTensor>, specs: readonly TensorSpec[]): Tensor[] {
  const names = Object.keys(inputs);
  const unknown = names.filter((n) => !specs.some((s) => s.name === n));
  if (unknown.length) throw new AppError('SHAPE_MISMATCH', `the model has no input ${unknown.join(', ')} (it takes ${specs.map((s) => s.name).join(', ')})`);
  let total = 0;
  return specs.map((spec) => {
    const t = inputs[spec.name];
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
    const data = Buffer.from(t.data, 'base64');
    const want = elementCount(t.dims) * itemSize(t.dtype as Tensor['dtype']);
    if (data.byteLength !== want) {
      throw new AppError('SHAPE_MISMATCH', `input ${spec.name}: ${data.byteLength} bytes of data, dims ${fmtShape(t.dims)} of ${t.dtype} take ${want}`);
    }
    total += data.byteLength;
    if (total > INFER_MAX_BYTES) throw new AppError('TOO_LARGE', `the inputs hold more than ${INFER_MAX_BYTES} bytes; submit a batch job instead`);
    return { name: spec.name, dtype: t.dtype as Tensor['dtype'], dims: [...t.dims], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
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
