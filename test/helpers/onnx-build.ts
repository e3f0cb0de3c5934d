/**
 * The pieces tests and benchmarks build ONNX models from, in the schema the server reads (ONNX 1.20, via
 * onnx-buf): tensor declarations with fixed and named dims, float initializers, and a graph encoded as a
 * model. The schema's int64 fields (dims, versions) are bigints; these take numbers.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { type GraphProtoSchema, type NodeProtoSchema, TensorProto_DataType, type TensorProtoSchema, type ValueInfoProtoSchema } from 'onnx-buf';
import { encodeModel } from '../../server/onnx/onnx-codec.js';

export type GraphInit = MessageInitShape<typeof GraphProtoSchema>;
export type NodeInit = MessageInitShape<typeof NodeProtoSchema>;
export type TensorInit = MessageInitShape<typeof TensorProtoSchema>;
export type ValueInfoInit = MessageInitShape<typeof ValueInfoProtoSchema>;

/** ONNX element types by name (TensorProto.DataType). */
export const T = TensorProto_DataType;

/** A tensor type's shape: numbers are fixed dims, strings symbolic ones. */
export function shapeOf(dims: readonly (number | string)[]) {
  return {
    dim: dims.map((d) => ({ value: typeof d === 'number' ? { case: 'dimValue' as const, value: BigInt(d) } : { case: 'dimParam' as const, value: d } })),
  };
}

/** A tensor's declaration, with metadata_props when given. */
export function tensorInfo(name: string, elemType: number, dims: readonly (number | string)[], metadata: Record<string, string> = {}): ValueInfoInit {
  return {
    name,
    type: { value: { case: 'tensorType', value: { elemType, shape: shapeOf(dims) } } },
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
}

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorInit {
  return { name, dims: dims.map(BigInt), dataType: T.FLOAT, floatData: Array.from(values) };
}

export function int64Tensor(name: string, dims: number[], values: number[]): TensorInit {
  return { name, dims: dims.map(BigInt), dataType: T.INT64, int64Data: values.map(BigInt) };
}

/** The graph as a model of the given IR version with the default domain's opset. */
export function encodeGraph(graph: GraphInit, opts: { irVersion: number; opset: number; producerName: string }): Uint8Array {
  return encodeModel({
    irVersion: BigInt(opts.irVersion), producerName: opts.producerName, opsetImport: [{ domain: '', version: BigInt(opts.opset) }], graph,
  });
}
