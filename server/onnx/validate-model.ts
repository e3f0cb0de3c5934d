/**
 * Refuses a broken model before any volunteer sees it: the bytes must parse as ONNX and load in
 * onnxruntime-node, and every input and output must have a dtype that workers can carry.
 */
import * as ort from 'onnxruntime-node';
import { AppError } from '../../shared/errors.js';
import { DTYPES } from '../../shared/tensor.js';
import { type ModelInfo, readModelInfo } from './model-info.js';

export async function validateModel(bytes: Uint8Array): Promise<ModelInfo> {
  const info = readModelInfo(bytes);
  for (const s of [...info.inputs, ...info.outputs]) {
    if (!(DTYPES as string[]).includes(s.dtype)) {
      throw new AppError('INVALID_MODEL', `tensor ${s.name} has dtype ${s.dtype}; supported: ${DTYPES.join(', ')}`);
    }
  }
  if (info.inputs.length === 0) throw new AppError('INVALID_MODEL', 'the model has no inputs');
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
