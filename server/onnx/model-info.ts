/**
 * Reads what a model declares: its real inputs (graph inputs that are not initializers), outputs,
 * their dtypes and shapes (numbers for fixed dims, names for symbolic ones), and its opsets.
 * It describes; validate-model.ts judges.
 */
import type { ValueInfoProto } from 'onnx-buf';
import { AppError } from '../../shared/errors.js';
import type { TensorSpec } from '../../shared/protocol.js';
import { decodeModel, dimOf, tensorTypeOf } from './onnx-codec.js';

const ELEM_TYPES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

export interface ModelInfo {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  opsets: Record<string, number>;
  nodes: number;
}

function specOf(v: ValueInfoProto): TensorSpec {
  const tt = tensorTypeOf(v);
  if (!tt) throw new AppError('INVALID_MODEL', `value ${v.name} is not a tensor; only tensor inputs and outputs are supported`);
  const elem = tt.elemType;
  // A fixed dimension is kept as written, zero and negative ones included, so validation can refuse them.
  const shape = (tt.shape?.dim ?? []).map((d, i) => {
    const dim = dimOf(d);
    return typeof dim === 'number' ? dim : dim || `d${i}`;
  });
  return { name: v.name, dtype: ELEM_TYPES[elem] ?? `elem${elem}`, shape };
}

/** Parses ONNX bytes; a file that is not an ONNX model gets INVALID_MODEL with the reason. */
export function readModelInfo(bytes: Uint8Array): ModelInfo {
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (!graph || graph.node.length === 0) throw new AppError('INVALID_MODEL', 'not an ONNX model: it has no graph nodes');
  const initNames = new Set(graph.initializer.map((t) => t.name));
  const opsets: Record<string, number> = {};
  for (const o of model.opsetImport) opsets[o.domain || 'ai.onnx'] = Number(o.version);
  return {
    inputs: graph.input.filter((i) => !initNames.has(i.name)).map(specOf),
    outputs: graph.output.map(specOf),
    opsets,
    nodes: graph.node.length,
  };
}
