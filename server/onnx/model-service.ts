/**
 * Uploaded models: validated, stored content-addressed on disk, described in the store.
 */
import type { BlobStore } from '../store/blob-store.js';
import { sha256 } from '../store/blob-store.js';
import type { ModelRow, Store } from '../store/store.js';
import type { Clock } from '../scheduler/clock.js';
import { validateModel } from './validate-model.js';

export class ModelService {
  constructor(private readonly deps: { store: Store; blobs: BlobStore; clock: Clock }) {}

  /** Validates and stores a model; uploading the same bytes again returns the same record. */
  async upload(bytes: Uint8Array): Promise<ModelRow> {
    const hash = sha256(bytes);
    const known = this.deps.store.getModel(hash);
    if (known && this.deps.blobs.has(hash)) return known;
    const info = await validateModel(bytes);
    this.deps.blobs.put(bytes);
    const row: ModelRow = {
      hash, size: bytes.byteLength, inputs: info.inputs, outputs: info.outputs, opsets: info.opsets,
      createdAt: this.deps.clock.now(),
    };
    this.deps.store.putModel(row);
    return row;
  }
}
