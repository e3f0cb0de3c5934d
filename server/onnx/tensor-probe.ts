/**
 * Dtypes and shapes of intermediate tensors that the model file does not declare (most exporters write
 * no value_info). We learn them by running the model itself: onnxruntime-node runs a copy of the model
 * whose graph outputs also list the tensors we ask about, twice, on dummy inputs of two sizes. A dim
 * that is the same in both runs is fixed; one that changes is symbolic, named after the input dim it
 * follows when exactly one does (so a batch axis stays `batch`), else `<tensor>_dim<i>`.
 */
import { create } from '@bufbuild/protobuf';
import { type ModelProto, type TypeProto, TypeProtoSchema, type ValueInfoProto, ValueInfoProtoSchema } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { AppError } from '../../shared/errors.js';
import { dimOf, encodeModel, tensorTypeOf } from './onnx-codec.js';

/**
 * One thread: these runs are small, and a thread pool per short-lived session costs more than it
 * saves, most of all on a busy machine. Failures come back in our errors, so onnxruntime's own log
 * stays quiet.
 */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 4 };

/** The probe only reads types and shapes, which graph optimization does not change; skipping it halves the set-up. */
const PROBE_OPTIONS: ort.InferenceSession.SessionOptions = { ...SESSION_OPTIONS, graphOptimizationLevel: 'disabled' };

/** Values for symbolic input dims by dim name (or `input[axis]` when unnamed); the second run doubles them. */
export type ProbeDims = Record<string, number>;

const ORT_ELEM: Record<string, number> = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, string: 8, bool: 9,
  float16: 10, float64: 11, uint32: 12, uint64: 13, bfloat16: 16,
};

/** Deterministic values in [0, 1), so a check on dummy inputs is repeatable. */
function unitValues(seed: number, n: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  });
}

interface DimSlot { key: string; axis: number; fixed?: number }

function dimSlots(v: ValueInfoProto): DimSlot[] {
  const tt = tensorTypeOf(v);
  if (!tt) throw new AppError('INVALID_MODEL', `graph input ${v.name} is not a tensor; only tensor inputs are supported`);
  return (tt.shape?.dim ?? []).map((d, axis) => {
    const dim = dimOf(d);
    if (typeof dim === 'number' && dim > 0) return { key: '', axis, fixed: dim };
    return { key: typeof dim === 'string' && dim !== '' ? dim : `${v.name}[${axis}]`, axis };
  });
}

/** The value a symbolic dim takes in a probe: the caller's, else 1 for a leading axis and 64 elsewhere. */
function dimValue(slot: DimSlot, dims: ProbeDims, scale: number): number {
  if (slot.fixed !== undefined) return slot.fixed;
  return (dims[slot.key] ?? (slot.axis === 0 ? 1 : 64)) * scale;
}

/**
 * Dummy feeds for the graph's real inputs: deterministic values in [0, 1) for floats, zeros otherwise.
 * `scale` multiplies every symbolic dim (the second probe uses 2).
 */
export function dummyFeeds(inputs: ValueInfoProto[], dims: ProbeDims = {}, scale = 1): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  inputs.forEach((v, k) => {
    const shape = dimSlots(v).map((s) => dimValue(s, dims, scale));
    const n = shape.reduce((x, y) => x * y, 1);
    const elem = tensorTypeOf(v)?.elemType ?? 0;
    const type = Object.keys(ORT_ELEM).find((t) => ORT_ELEM[t] === elem);
    const values = (): number[] => unitValues(k + 1, n);
    const data: Record<string, () => ArrayBufferView> = {
      float32: () => Float32Array.from(values()), float64: () => Float64Array.from(values()),
      int64: () => new BigInt64Array(n), uint64: () => new BigUint64Array(n), int32: () => new Int32Array(n),
      uint32: () => new Uint32Array(n), int16: () => new Int16Array(n), uint16: () => new Uint16Array(n),
      float16: () => new Uint16Array(n), int8: () => new Int8Array(n), uint8: () => new Uint8Array(n), bool: () => new Uint8Array(n),
    };
    if (!type || !data[type]) throw new AppError('INVALID_MODEL', `graph input ${v.name} has element type ${elem}, which the partitioner cannot feed`);
    feeds[v.name] = new ort.Tensor(type as 'float32', data[type]() as Float32Array, shape);
  });
  return feeds;
}

/**
 * Returns the tensor type of each named tensor, learnt by running the model on dummy inputs.
 * Throws INVALID_MODEL when the model cannot run on them, with onnxruntime's reason.
 */
export async function probeTensorTypes(model: ModelProto, names: string[], dims: ProbeDims = {}): Promise<Map<string, TypeProto>> {
  const graph = model.graph!;
  const initNames = new Set(graph.initializer.map((t) => t.name));
  const inputs = graph.input.filter((v) => !initNames.has(v.name));
  const declared = new Set(graph.output.map((v) => v.name));
  const extra = names.filter((n) => !declared.has(n)).map((name) => create(ValueInfoProtoSchema, { name }));
  // Shallow copies: the model as it is, but for the outputs it is asked for.
  const probe = encodeModel({ ...model, graph: { ...graph, output: [...graph.output, ...extra] } });

  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(probe, PROBE_OPTIONS);
    let first: ort.InferenceSession.OnnxValueMapType;
    try {
      first = await session.run(dummyFeeds(inputs, dims, 1));
    } catch (err) {
      throw new AppError('INVALID_MODEL', `cannot learn the types of the tensors between stages: the model does not run on a dummy input with symbolic dims ${JSON.stringify(probeDimsUsed(inputs, dims))} (choose others with probeDims): ${(err as Error).message}`, { cause: err });
    }
    const second = await session.run(dummyFeeds(inputs, dims, 2)).catch(() => null);
    const params = symbolicParams(inputs, dims);
    const types = new Map<string, TypeProto>();
    for (const name of names) {
      const a = first[name];
      const b = second?.[name];
      const elemType = a && ORT_ELEM[a.type];
      if (!elemType) throw new AppError('INVALID_MODEL', `tensor ${name} is not a tensor onnxruntime returns (type ${a?.type ?? 'none'}), so it cannot travel between stages`);
      const dim = a.dims.map((d, i) => {
        if (b && b.dims.length === a.dims.length && b.dims[i] === d) return { value: { case: 'dimValue' as const, value: BigInt(d) } };
        const matches = b ? params.filter((p) => p.first === d && p.second === b.dims[i]) : [];
        return { value: { case: 'dimParam' as const, value: matches.length === 1 ? matches[0].name : `${name}_dim${i}` } };
      });
      types.set(name, create(TypeProtoSchema, { value: { case: 'tensorType', value: { elemType, shape: { dim } } } }));
    }
    return types;
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError('INVALID_MODEL', `cannot learn the types of the tensors between stages: ${(err as Error).message}`, { cause: err });
  } finally {
    await session?.release();
  }
}

function probeDimsUsed(inputs: ValueInfoProto[], dims: ProbeDims): ProbeDims {
  const used: ProbeDims = {};
  for (const v of inputs) for (const s of dimSlots(v)) if (s.fixed === undefined) used[s.key] = dimValue(s, dims, 1);
  return used;
}

/** Named symbolic input dims and their values in the two probes. */
function symbolicParams(inputs: ValueInfoProto[], dims: ProbeDims): { name: string; first: number; second: number }[] {
  const out = new Map<string, { name: string; first: number; second: number }>();
  for (const v of inputs) {
    for (const s of dimSlots(v)) {
      if (s.fixed === undefined && !s.key.includes('[')) out.set(s.key, { name: s.key, first: dimValue(s, dims, 1), second: dimValue(s, dims, 2) });
    }
  }
  return [...out.values()];
}
