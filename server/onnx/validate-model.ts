/**
 * Refuses a broken model before any volunteer sees it: the bytes must parse as ONNX and load in
 * onnxruntime-node, every input and output must have a dtype that workers can carry, and every fixed input
 * dimension must be at least 1.
 */
import * as ort from 'onnxruntime-node';
import { AppError } from '../../shared/errors.js';
import type { TensorSpec } from '../../shared/protocol.js';
import { DTYPES } from '../../shared/tensor.js';
import { type ModelInfo, readModelInfo } from './model-info.js';

/**
 * Refuses inputs with a fixed dimension below 1: a first axis fixed at -1 or 0 makes batches of no items,
 * and a job of such tasks never ends.
 */
export function checkInputDims(inputs: TensorSpec[]): void {
  for (const s of inputs) {
    const bad = s.shape.findIndex((d) => typeof d === 'number' && d < 1);
    if (bad >= 0) {
      throw new AppError('INVALID_MODEL', `input ${s.name} has shape [${s.shape.join(', ')}]: dimension ${bad} is fixed at ${s.shape[bad]}; fixed dimensions must be 1 or more (or named, for any size)`);
    }
  }
}

export async function validateModel(bytes: Uint8Array): Promise<ModelInfo> {
  const info = readModelInfo(bytes);
  for (const s of [...info.inputs, ...info.outputs]) {
    if (!(DTYPES as string[]).includes(s.dtype)) {
      throw new AppError('INVALID_MODEL', `tensor ${s.name} has dtype ${s.dtype}; supported: ${DTYPES.join(', ')}`);
    }
  }
  if (info.inputs.length === 0) throw new AppError('INVALID_MODEL', 'the model has no inputs');
  checkInputDims(info.inputs);
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(bytes);
  } catch (err) {
    throw new AppError('INVALID_MODEL', `onnxruntime cannot load the model: ${(err as Error).message}`, { cause: err });
  } finally {
    await session?.release();
  }
  return info;
}
