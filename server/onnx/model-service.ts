/**
 * Uploaded models: validated, stored content-addressed on disk, described in the store.
 */
import type { BlobStore } from '../store/blob-store.js';
import { sha256 } from '../store/blob-store.js';
import type { ModelRow, Store } from '../store/store.js';
import type { Clock } from '../scheduler/clock.js';
import { analyzeGraph } from './graph-order.js';
import { decodeModel } from './onnx-codec.js';
import { checkInputDims, validateModel } from './validate-model.js';
import { type PartitionResult, type PartitionSpec, checkPartition, partitionModel } from './partition.js';
import { AppError } from '../../shared/errors.js';
import type { Tolerance } from '../../shared/compare.js';
import type { Tensor } from '../../shared/tensor.js';

/** Bytes of a model's weights (initializers and Constant values), in all and the largest one. */
export function weightsOf(bytes: Uint8Array): { weightBytes: number; largestWeight: number } {
  let weightBytes = 0;
  let largestWeight = 0;
  for (const w of analyzeGraph(decodeModel(bytes)).weights.values()) {
    weightBytes += w.bytes;
    largestWeight = Math.max(largestWeight, w.bytes);
  }
  return { weightBytes, largestWeight };
}

export class ModelService {
  /** Splits already made, by model, spec and probe sizes: partitioning is deterministic. */
  private readonly splits = new Map<string, Promise<PartitionResult>>();

  constructor(private readonly deps: { store: Store; blobs: BlobStore; clock: Clock }) {}

  /** Validates and stores a model; uploading the same bytes again returns the same record. */
  async upload(bytes: Uint8Array): Promise<ModelRow> {
    const hash = sha256(bytes);
    const known = this.deps.store.getModel(hash);
    if (known && this.deps.blobs.has(hash)) {
      // Stored before such models were refused: refused now all the same.
      checkInputDims(known.inputs);
      return known;
    }
    const info = await validateModel(bytes);
    this.deps.blobs.put(bytes);
    const row: ModelRow = {
      hash, size: bytes.byteLength, inputs: info.inputs, outputs: info.outputs, opsets: info.opsets, ...weightsOf(bytes),
      createdAt: this.deps.clock.now(),
    };
    this.deps.store.putModel(row);
    return row;
  }

  /**
   * Splits a stored model into pipeline stages, checks on `sample` (a batch of real inputs) that the stages
   * in sequence give the whole model's outputs, stores each stage as a model, and returns their hashes.
   */
  async split(hash: string, spec: PartitionSpec, sample: Tensor[], tol: Tolerance): Promise<string[]> {
    const { store, blobs, clock } = this.deps;
    const whole = store.getModel(hash)!;
    const bytes = new Uint8Array(blobs.read(hash));
    // Learn the tensors between stages at the sample's own sizes (symbolic dims named as the model names them).
    const probeDims: Record<string, number> = {};
    for (const spec of whole.inputs) {
      const t = sample.find((x) => x.name === spec.name);
      spec.shape.forEach((d, i) => { if (typeof d === 'string' && t) probeDims[d] = t.dims[i]; });
    }
    const key = JSON.stringify([hash, spec, probeDims]);
    let pending = this.splits.get(key);
    if (!pending) {
      pending = partitionModel(bytes, { ...spec, probeDims });
      pending.catch(() => this.splits.delete(key));
      this.splits.set(key, pending);
    }
    const result = await pending;
    const check = await checkPartition(bytes, result, sample, tol);
    if (check.verdict === 'disagree') throw new AppError('INVALID_MODEL', `the stages do not reproduce the whole model on the first batch: ${check.detail}`);
    return result.stages.map((stage) => {
      blobs.put(stage.bytes);
      store.putModel({
        hash: stage.hash, size: stage.bytes.byteLength, inputs: stage.inputs, outputs: stage.outputs, opsets: whole.opsets,
        ...weightsOf(stage.bytes), createdAt: clock.now(),
      });
      return stage.hash;
    });
  }
}
