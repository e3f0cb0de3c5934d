/**
 * Checks a job's data sets against the model's declared inputs, and works out items and batch size.
 */
import { AppError } from '../../shared/errors.js';
import type { TensorSpec } from '../../shared/protocol.js';
import type { DType } from '../../shared/tensor.js';
import type { JobInput, ModelRow, Store } from '../store/store.js';

const fmt = (shape: readonly (number | string)[]) => `[${shape.join(', ')}]`;

/** Refuses data whose dtype or per-item shape does not fit a model input, naming both shapes. */
export function checkInput(spec: TensorSpec, dtype: DType, shape: number[]): void {
  if (dtype !== spec.dtype) throw new AppError('SHAPE_MISMATCH', `input ${spec.name}: the data is ${dtype}, the model takes ${spec.dtype}`);
  const fits = spec.shape.length === shape.length && spec.shape.every((d, i) => i === 0 || typeof d !== 'number' || d === shape[i]);
  if (!fits) {
    throw new AppError('SHAPE_MISMATCH', `input ${spec.name}: the data has shape ${fmt(shape)} (first axis = items), the model takes ${fmt(spec.shape)}`);
  }
}

/** Resolves input name -> data set for every model input; returns the inputs, item count and batch size. */
export function resolveInputs(store: Store, model: ModelRow, given: Record<string, string>, batchSize: number): { inputs: JobInput[]; items: number; batchSize: number } {
  const names = model.inputs.map((s) => s.name);
  for (const name of Object.keys(given)) {
    if (!names.includes(name)) throw new AppError('SHAPE_MISMATCH', `the model has no input named ${name}; its inputs are: ${names.join(', ')}`);
  }
  let items = -1;
  let batch = batchSize;
  const inputs: JobInput[] = model.inputs.map((spec) => {
    const hash = given[spec.name];
    if (!hash) throw new AppError('SHAPE_MISMATCH', `no data for model input ${spec.name}; the model's inputs are: ${names.join(', ')}`);
    const ds = store.getDataset(hash);
    if (!ds) throw new AppError('NOT_FOUND', `data set ${hash} not found; upload it first`);
    // Data sets stored before zero-sized items were refused at upload are refused here.
    if (ds.shape.some((d) => d < 1)) throw new AppError('INVALID_PAYLOAD', `input ${spec.name}: the data set's shape ${fmt(ds.shape)} has a zero dimension: its items hold no data`);
    checkInput(spec, ds.dtype, ds.shape);
    if (items >= 0 && ds.shape[0] !== items) {
      throw new AppError('SHAPE_MISMATCH', `input ${spec.name} has ${ds.shape[0]} items, another input has ${items}: all inputs need the same item count`);
    }
    items = ds.shape[0];
    if (typeof spec.shape[0] === 'number') batch = spec.shape[0];
    return { name: spec.name, dataset: hash, dtype: ds.dtype, shape: ds.shape, dataOffset: ds.dataOffset };
  });
  if (items <= 0) throw new AppError('INVALID_PAYLOAD', 'the data set has no items');
  if (!(batch >= 1)) throw new AppError('INVALID_MODEL', `the model's first input axis is fixed at ${batch}: a batch needs at least one item`);
  if (items % batch !== 0 && model.inputs.some((s) => typeof s.shape[0] === 'number')) {
    throw new AppError('SHAPE_MISMATCH', `the model takes exactly ${batch} items per run (first axis fixed), and ${items} items do not divide into such batches`);
  }
  return { inputs, items, batchSize: batch };
}
