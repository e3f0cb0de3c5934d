/**
 * Checks a partition the way a pipeline of volunteers would use it: onnxruntime-node runs the stages in
 * order, each fed only the previous stage's outputs by name, and the last stage's outputs must equal
 * the whole model's within tolerance.
 */
import * as ort from 'onnxruntime-node';
import { type CompareResult, type Tolerance, compareOutputs } from '../../shared/compare.js';
import { AppError } from '../../shared/errors.js';
import { DTYPES, type DType, type Tensor, alignedCopy } from '../../shared/tensor.js';
import { decodeModel } from './onnx-codec.js';
import type { PartitionResult } from './partition.js';
import { SESSION_OPTIONS, dummyFeeds } from './tensor-probe.js';

type Feeds = Record<string, ort.Tensor>;

const DEFAULT_TOLERANCE: Tolerance = { rtol: 1e-3, atol: 1e-4 };

function toOrt(t: Tensor): ort.Tensor {
  const buf = alignedCopy(t.data);
  const views: Record<DType, () => ArrayBufferView> = {
    float32: () => new Float32Array(buf), float64: () => new Float64Array(buf), int64: () => new BigInt64Array(buf),
    int32: () => new Int32Array(buf), int8: () => new Int8Array(buf), uint8: () => new Uint8Array(buf), bool: () => new Uint8Array(buf),
  };
  return new ort.Tensor(t.dtype, views[t.dtype]() as Float32Array, t.dims);
}

function fromOrt(name: string, t: ort.Tensor): Tensor {
  const data = t.data as ArrayBufferView;
  return { name, dtype: t.type as DType, dims: Array.from(t.dims), data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

async function run(model: Uint8Array, feeds: Feeds): Promise<Feeds> {
  const session = await ort.InferenceSession.create(model, SESSION_OPTIONS);
  try {
    const wanted: Feeds = {};
    for (const name of session.inputNames) wanted[name] = feeds[name];
    return await session.run(wanted);
  } finally {
    await session.release();
  }
}

/**
 * Runs the whole model and the stages on `sampleInputs` (default: deterministic dummy inputs with
 * symbolic dims at 1 for a leading axis and 64 elsewhere) and compares the final outputs.
 * A stage that fails to load or run, or that lacks an input, is a disagreement with the reason.
 */
export async function checkPartition(
  bytes: Uint8Array, result: PartitionResult, sampleInputs?: Tensor[], tol: Tolerance = DEFAULT_TOLERANCE,
): Promise<CompareResult> {
  let feeds: Feeds;
  if (sampleInputs) {
    feeds = Object.fromEntries(sampleInputs.map((t) => [t.name, toOrt(t)]));
  } else {
    const graph = decodeModel(bytes).graph;
    const inits = new Set((graph?.initializer ?? []).map((t) => t.name));
    feeds = dummyFeeds((graph?.input ?? []).filter((v) => !inits.has(v.name)));
  }
  let reference: Feeds;
  try {
    reference = await run(bytes, feeds);
  } catch (err) {
    throw new AppError('INVALID_PAYLOAD', `the whole model does not run on the sample inputs: ${(err as Error).message}`, { cause: err });
  }

  let current = feeds;
  for (const stage of result.stages) {
    const missing = stage.inputs.map((s) => s.name).filter((n) => !(n in current));
    if (missing.length > 0) return { verdict: 'disagree', detail: `stage ${stage.index} needs ${missing.join(', ')}, which ${stage.index === 1 ? 'the sample inputs lack' : `stage ${stage.index - 1} does not output`}` };
    try {
      current = await run(stage.bytes, current);
    } catch (err) {
      return { verdict: 'disagree', detail: `stage ${stage.index} fails: ${(err as Error).message}` };
    }
  }

  const names = Object.keys(reference);
  const absent = names.filter((n) => !(n in current));
  if (absent.length > 0) return { verdict: 'disagree', detail: `the last stage does not output ${absent.join(', ')}` };
  const extra = Object.keys(current).filter((n) => !(n in reference));
  if (extra.length > 0) return { verdict: 'disagree', detail: `the last stage outputs ${extra.join(', ')}, which the model does not` };
  const untyped = names.find((n) => !(DTYPES as string[]).includes(reference[n].type));
  if (untyped) return { verdict: 'disagree', detail: `output ${untyped} has dtype ${reference[untyped].type}, which the check cannot compare` };
  return compareOutputs(names.map((n) => fromOrt(n, current[n])), names.map((n) => fromOrt(n, reference[n])), tol);
}
