/**
 * ONNX bytes to messages and back, with the ONNX 1.20 schema (onnx-buf, over @bufbuild/protobuf), so that
 * what newer exporters write survives a split: 4- and 8-bit element types, metadata_props on values,
 * nodes and graphs, device configurations, function value_info and overloads. Fields newer than 1.20 are
 * kept too: @bufbuild/protobuf keeps unknown fields in `$unknown` and writes them back.
 *
 * In this schema int64 fields (dims, versions, dim values) are bigints, oneofs are `{ case, value }`, and a
 * message built with `create` from plain objects converts the nested ones.
 */
import { type MessageInitShape, create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { type ModelProto, ModelProtoSchema, type TensorShapeProto_Dimension, type TypeProto, type TypeProto_Tensor } from 'onnx-buf';
import { AppError } from '../../shared/errors.js';

export type ModelInit = MessageInitShape<typeof ModelProtoSchema>;

/** Parses ONNX bytes; bytes that are not an ONNX model get INVALID_MODEL with the parser's reason. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  try {
    return fromBinary(ModelProtoSchema, bytes);
  } catch (err) {
    throw new AppError('INVALID_MODEL', `not an ONNX model: ${(err as Error).message}`, { cause: err });
  }
}

/** Writes a model, unknown fields included; plain objects in `model` become messages. */
export function encodeModel(model: ModelProto | ModelInit): Uint8Array {
  return toBinary(ModelProtoSchema, create(ModelProtoSchema, model));
}

/** The tensor type of a value, or undefined when it is not a tensor (a sequence, a map, an optional). */
export function tensorTypeOf(v: { type?: TypeProto } | undefined): TypeProto_Tensor | undefined {
  const t = v?.type?.value;
  return t?.case === 'tensorType' ? t.value : undefined;
}

/** A dim as a number (fixed, as written) or a name (symbolic); undefined when it is neither. */
export function dimOf(d: TensorShapeProto_Dimension): number | string | undefined {
  if (d.value.case === 'dimValue') return Number(d.value.value);
  return d.value.case === 'dimParam' ? d.value.value : undefined;
}
