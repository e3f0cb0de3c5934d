/**
 * Splits an ONNX model into pipeline stages, so that each volunteer downloads and runs only its stage
 * and a batch flows through them in order. Stage k's outputs are exactly stage k + 1's inputs, by name:
 * a cut carries every tensor written before it and needed at or after it (skip connections, branches,
 * graph inputs needed later and graph outputs produced early are passed along through the stages in
 * between). The first stage takes the model's inputs; the last gives the model's outputs.
 *
 * Where to cut is planned in partition-plan.ts; the types of the tensors at the cuts come from the
 * model's declarations or, where it has none, from running it once (tensor-probe.ts).
 */
import { createHash } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { type GraphProto, type TypeProto, type ValueInfoProto, ValueInfoProtoSchema } from 'onnx-buf';
import type { TensorSpec } from '../../shared/protocol.js';
import { analyzeGraph } from './graph-order.js';
import { readModelInfo } from './model-info.js';
import { decodeModel, tensorTypeOf } from './onnx-codec.js';
import { type PartitionSpec, crossingAt, planBoundaries } from './partition-plan.js';
import { buildStageModel } from './stage-model.js';
import { type ProbeDims, probeTensorTypes } from './tensor-probe.js';

export { checkPartition } from './partition-check.js';
export type { PartitionSpec } from './partition-plan.js';
export type { ProbeDims } from './tensor-probe.js';

/**
 * `stages`: that many stages balanced by weight bytes. `cuts`: names of tensors (or nodes) after whose
 * producer to cut, in any order; N names give N + 1 stages. `probeDims`: values for the model's symbolic
 * input dims when learning intermediate types (default 1 for a leading axis, 64 elsewhere).
 */
export type PartitionOptions = PartitionSpec & { probeDims?: ProbeDims };

export interface PartitionStage {
  /** 1-based, as in stage-1.onnx. */
  index: number;
  bytes: Uint8Array;
  /** sha256 of `bytes`, hex. */
  hash: string;
  /** Nodes in the stage model, copied Constant nodes included. */
  nodes: number;
  /** Bytes of the weights (initializers and Constant values) the stage holds. */
  weightBytes: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

export interface PartitionResult { stages: PartitionStage[] }

/**
 * Declarations usable for a tensor between stages: those that name the element type and give a shape
 * (dims may be symbolic). The whole declaration travels, its doc string and metadata_props included.
 */
function declaredValues(graph: GraphProto): Map<string, ValueInfoProto> {
  const values = new Map<string, ValueInfoProto>();
  for (const v of [...graph.valueInfo, ...graph.output, ...graph.input]) {
    const tt = tensorTypeOf(v);
    if (v.name && tt?.elemType && tt.shape) values.set(v.name, v);
  }
  return values;
}

/**
 * Splits the model into stages. Throws INVALID_PAYLOAD for a split that cannot be made (more stages
 * than compute nodes, an unknown cut name) and INVALID_MODEL for a model that cannot be split (not
 * ONNX, a cycle, weights in external files, or one that does not run to reveal its intermediate types).
 */
export async function partitionModel(bytes: Uint8Array, opts: PartitionOptions): Promise<PartitionResult> {
  const model = decodeModel(bytes);
  const a = analyzeGraph(model);
  const bounds = planBoundaries(a, 'cuts' in opts ? { cuts: opts.cuts } : { stages: opts.stages });
  const count = bounds.length - 1;
  const crossings = bounds.map((p, k) => (k === 0 || k === count ? [] : crossingAt(a, p)));

  const declared = declaredValues(a.graph);
  const unknown = [...new Set(crossings.flat())].filter((n) => !declared.has(n));
  const probed = unknown.length > 0 ? await probeTensorTypes(model, unknown, opts.probeDims) : new Map<string, TypeProto>();
  const infoOf = (name: string) => declared.get(name) ?? create(ValueInfoProtoSchema, { name, type: probed.get(name)! });

  const stages: PartitionStage[] = [];
  for (let k = 0; k < count; k++) {
    const built = buildStageModel(a, {
      index: k + 1, count, from: bounds[k], to: bounds[k + 1], inputs: crossings[k], outputs: crossings[k + 1],
    }, infoOf);
    const info = readModelInfo(built.bytes);
    stages.push({
      index: k + 1,
      bytes: built.bytes,
      hash: createHash('sha256').update(built.bytes).digest('hex'),
      nodes: built.nodes,
      weightBytes: built.weightBytes,
      inputs: info.inputs,
      outputs: info.outputs,
    });
  }
  return { stages };
}
