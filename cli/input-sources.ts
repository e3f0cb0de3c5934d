/**
 * What `tabgrid submit --inputs PATH` means for a model's inputs: a .npy file (a model with one input), a
 * folder of <input-name>.npy, or a folder of PNG/JPEG images (a model with one image input). Everything that
 * can be refused is refused here, before any data is uploaded.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../shared/errors.js';
import type { TensorSpec } from '../shared/protocol.js';
import { type ImageInput, imageInput, listImages } from './image-input.js';
import { type ImageOptions, givenImageFlags } from './image-options.js';
import { type NpyInputOptions, type PreparedInput, npyInput } from './npy-input.js';

export interface InputSources {
  inputs: PreparedInput[];
  /** Set when the inputs are images: the manifest to write beside the results. */
  images: ImageInput | null;
}

export function inputSources(inputs: string, specs: TensorSpec[], images: ImageOptions, o: NpyInputOptions = {}): InputSources {
  if (!fs.existsSync(inputs)) throw new AppError('NOT_FOUND', `inputs not found: ${inputs}`);
  const names = specs.map((s) => s.name);
  const noImageFlags = (what: string) => {
    const flags = givenImageFlags(images);
    if (flags.length) throw new AppError('INVALID_PAYLOAD', `${flags.join(', ')} ${flags.length === 1 ? 'applies' : 'apply'} to a folder of images; ${what}`);
  };
  if (!fs.statSync(inputs).isDirectory()) {
    if (specs.length !== 1) {
      throw new AppError('SHAPE_MISMATCH', `the model has ${specs.length} inputs (${names.join(', ')}): pass a folder with one .npy per input`);
    }
    noImageFlags(`${inputs} is an array`);
    return { inputs: [npyInput(inputs, specs[0], o)], images: null };
  }
  const npys = specs.map((s) => path.join(inputs, `${s.name}.npy`));
  if (npys.every((f) => fs.existsSync(f))) {
    noImageFlags(`${inputs} holds one .npy per input`);
    return { inputs: specs.map((s, i) => npyInput(npys[i], s, o)), images: null };
  }
  if (specs.length === 1 && listImages(inputs).images.length > 0) {
    const img = imageInput(inputs, specs[0], images);
    return { inputs: [img], images: img };
  }
  const missing = specs.find((_, i) => !fs.existsSync(npys[i]))!;
  const orImages = specs.length === 1 ? ', or PNG/JPEG images for an image input' : '';
  throw new AppError('SHAPE_MISMATCH', `${inputs} has no ${missing.name}.npy; the model's inputs are: ${names.join(', ')} (one .npy each${orImages})`);
}
