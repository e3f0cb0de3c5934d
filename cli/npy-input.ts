/**
 * One .npy file made ready for a model input: as numpy wrote it (float64, Fortran order, int32 token ids)
 * converted to what the model takes while it streams to the server, chunk by chunk, never whole in memory.
 * A file that needs nothing is sent byte for byte as it is.
 */
import fs from 'node:fs';
import { AppError } from '../shared/errors.js';
import type { TensorSpec } from '../shared/protocol.js';
import { npyHeader } from '../shared/npy.js';
import { elementCount, itemSize } from '../shared/tensor.js';
import { type Cast, castChunk, castFor, castSizes, castTarget, describeCast } from './dtype-cast.js';
import { FORTRAN_BUDGET_BYTES, fortranToC, sameInBothOrders } from './fortran-order.js';
import { type NpyFileHeader, readNpyFileHeader } from './npy-file-header.js';

/** What the CLI uploads for one model input. */
export interface PreparedInput {
  /** The model input's name. */
  input: string;
  /** Where the data comes from, for the log line. */
  source: string;
  /** The one line saying what was converted, or null when the data goes as it is. */
  note: string | null;
  /** The .npy bytes to upload, in order; pulled one chunk at a time. */
  body(): AsyncIterable<Uint8Array>;
}

/** Bytes of source data read and converted at a time (whole elements). */
const CHUNK_BYTES = 1 << 20;

export interface NpyInputOptions {
  /** Most bytes of items a Fortran-order pass gathers (default 64 MiB). */
  fortranBudgetBytes?: number;
}

/** Plans the upload of `file` for the model input `spec`; reads only the file's header. */
export function npyInput(file: string, spec: TensorSpec, o: NpyInputOptions = {}): PreparedInput {
  const head = readNpyFileHeader(file);
  const cast = castFor(head.dtype, spec.dtype);
  const steps = [...(cast ? [describeCast(cast)] : []), ...(head.fortran ? ['Fortran order -> C order'] : [])];
  const note = steps.length ? `input ${spec.name}: ${steps.join(', ')}` : null;
  return {
    input: spec.name,
    source: file,
    note,
    body: () => (steps.length ? converted(head, spec.name, cast, o.fortranBudgetBytes ?? FORTRAN_BUDGET_BYTES) : asIs(file)),
  };
}

async function* asIs(file: string): AsyncGenerator<Uint8Array> {
  for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK_BYTES })) yield chunk as Buffer;
}

/**
 * The C-order data of the file, in chunks of whole elements of at most CHUNK_BYTES; a chunk may be a view of a
 * buffer that the next step overwrites.
 */
function* cOrderData(head: NpyFileHeader, budget: number): Generator<Uint8Array> {
  const size = itemSize(head.dtype);
  const step = Math.floor(CHUNK_BYTES / size) * size;
  if (head.fortran && !sameInBothOrders(head.shape)) {
    for (const pass of fortranToC(head, budget)) {
      for (let at = 0; at < pass.byteLength; at += step) yield pass.subarray(at, at + step);
    }
    return;
  }
  const total = elementCount(head.shape) * size;
  const fd = fs.openSync(head.file, 'r');
  try {
    for (let at = 0; at < total; at += step) {
      const chunk = new Uint8Array(Math.min(step, total - at));
      let got = 0;
      while (got < chunk.byteLength) {
        const n = fs.readSync(fd, chunk, got, chunk.byteLength - got, head.dataOffset + at + got);
        if (n === 0) throw new AppError('INVALID_PAYLOAD', `${head.file}: the file ended early (truncated .npy data)`);
        got += n;
      }
      yield chunk;
    }
  } finally {
    fs.closeSync(fd);
  }
}

async function* converted(head: NpyFileHeader, input: string, cast: Cast | null, budget: number): AsyncGenerator<Uint8Array> {
  const dtype = cast ? castTarget(cast) : head.dtype;
  yield npyHeader(dtype, head.shape);
  const itemElements = elementCount(head.shape.slice(1));
  const from = cast ? castSizes(cast).from : 1;
  let firstElement = 0;
  for (const chunk of cOrderData(head, budget)) {
    // The upload may still hold a chunk when the next is made: each one sent is a copy of its own.
    if (!cast) { yield chunk.slice(); continue; }
    yield castChunk(cast, chunk, { input, firstElement, itemElements });
    firstElement += chunk.byteLength / from;
  }
}
