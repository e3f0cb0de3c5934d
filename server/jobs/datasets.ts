/**
 * Data sets: .npy files whose first axis is the item axis, stored as uploaded. A task's inputs are read
 * as one contiguous byte range per input (C order), so the server never loads a whole data set for a task.
 */
import { AppError } from '../../shared/errors.js';
import { NpyError, parseNpyHeader } from '../../shared/npy.js';
import type { WireTensor } from '../../shared/protocol.js';
import { elementCount, itemSize } from '../../shared/tensor.js';
import type { BlobStore } from '../store/blob-store.js';
import { TooLargeError } from '../store/blob-store.js';
import type { Readable } from 'node:stream';
import type { DatasetRow, JobRow, Store, TaskRow } from '../store/store.js';
import type { Clock } from '../scheduler/clock.js';

export class DatasetService {
  constructor(private readonly deps: { store: Store; blobs: BlobStore; clock: Clock }) {}

  /** Stores a .npy upload as it streams in, so a large data set is never held in memory, then checks it. */
  async uploadStream(source: Readable, maxBytes: number): Promise<DatasetRow> {
    const { blobs, store } = this.deps;
    let stored;
    try {
      stored = await blobs.putStream(source, maxBytes);
    } catch (err) {
      if (err instanceof TooLargeError) throw new AppError('TOO_LARGE', `the data set is larger than ${maxBytes} bytes (TABGRID_MAX_DATASET_BYTES)`);
      throw err;
    }
    if (stored.size === 0) throw new AppError('INVALID_PAYLOAD', 'send the .npy file as the request body');
    const known = store.getDataset(stored.hash);
    if (known) return known;
    // The header sits in the first bytes (its length is in bytes 8 to 12; numpy keeps it small).
    const head = blobs.readRange(stored.hash, 0, Math.min(stored.size, 1 << 20));
    try {
      return this.record(stored.hash, this.check(new Uint8Array(head.buffer, head.byteOffset, head.byteLength), stored.size));
    } catch (err) {
      blobs.remove(stored.hash);
      throw err;
    }
  }

  private check(bytes: Uint8Array, fileSize: number): Omit<DatasetRow, 'hash' | 'createdAt'> {
    let head;
    try {
      head = parseNpyHeader(bytes);
    } catch (err) {
      if (err instanceof NpyError) throw new AppError('INVALID_PAYLOAD', `bad .npy file: ${err.message}`);
      throw err;
    }
    if (head.shape.length === 0) throw new AppError('INVALID_PAYLOAD', 'a data set needs an item axis: the .npy is a scalar');
    if (head.shape.some((d) => d === 0)) {
      throw new AppError('INVALID_PAYLOAD', `bad .npy file: shape [${head.shape}] has a zero dimension, so its items hold no data`);
    }
    const size = elementCount(head.shape) * itemSize(head.dtype);
    if (fileSize - head.dataOffset !== size) {
      throw new AppError('INVALID_PAYLOAD', `bad .npy file: shape [${head.shape}] of ${head.dtype} needs ${size} data bytes, got ${fileSize - head.dataOffset}`);
    }
    return { dtype: head.dtype, shape: head.shape, dataOffset: head.dataOffset, size };
  }

  private record(hash: string, head: Omit<DatasetRow, 'hash' | 'createdAt'>): DatasetRow {
    const row: DatasetRow = { hash, ...head, createdAt: this.deps.clock.now() };
    this.deps.store.putDataset(row);
    return row;
  }

  /** The input tensors of one task: items [itemStart, itemEnd) of each of the job's data sets. */
  taskInputs(job: JobRow, task: TaskRow): WireTensor[] {
    return job.inputs.map((input) => {
      const rowBytes = elementCount(input.shape.slice(1)) * itemSize(input.dtype);
      const data = this.deps.blobs.readRange(input.dataset, input.dataOffset + task.itemStart * rowBytes, (task.itemEnd - task.itemStart) * rowBytes);
      return { name: input.name, dtype: input.dtype, dims: [task.itemEnd - task.itemStart, ...input.shape.slice(1)], data };
    });
  }
}
