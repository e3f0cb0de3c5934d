/**
 * A folder of PNG and JPEG files as one model input: files sorted by name, each decoded, resized and laid out
 * in turn while the .npy upload streams (one decoded image in memory at a time), and a manifest that names
 * the file behind each item. A file that fails to decode stops the upload with its name: the server keeps no
 * part of an upload that does not finish, and no job is created.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../shared/errors.js';
import { npyHeader } from '../shared/npy.js';
import type { TensorSpec } from '../shared/protocol.js';
import { decodeImage } from './image-decode.js';
import type { ImageOptions } from './image-options.js';
import { type ImagePlan, describePlan, itemDims, planImages, toItem } from './image-plan.js';
import { resizeBilinear } from './image-resize.js';
import type { PreparedInput } from './npy-input.js';

const IMAGE_FILE = /\.(png|jpe?g)$/i;

export interface ImageFolder {
  /** Image file names, sorted by name (code point order, as `ls` with LC_ALL=C). */
  images: string[];
  /** Entries passed over: not named .png/.jpg/.jpeg, hidden (dot files), or not plain files. */
  ignored: string[];
}

/** What a folder holds, split into the images to use and the rest. */
export function listImages(dir: string): ImageFolder {
  const images: string[] = [];
  const ignored: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const use = entry.isFile() && !entry.name.startsWith('.') && IMAGE_FILE.test(entry.name);
    (use ? images : ignored).push(entry.name);
  }
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return { images: images.sort(byName), ignored: ignored.sort(byName) };
}

/** Written beside the results: which file each item (first axis index) came from, and how it was made. */
export interface InputsManifest {
  job?: string;
  input: string;
  folder: string;
  /** files[i] is item i. */
  files: string[];
  dtype: string;
  shape: number[];
  layout: string;
  resize: string;
  scale: number;
  mean: number[];
  std: number[];
}

export interface ImageInput extends PreparedInput {
  manifest: InputsManifest;
  /** A note on the files passed over, or null. */
  ignoredNote: string | null;
}

/** Plans the upload of the images in `dir` for the model input `spec`; decodes nothing yet. */
export function imageInput(dir: string, spec: TensorSpec, o: ImageOptions): ImageInput {
  const { images, ignored } = listImages(dir);
  if (images.length === 0) throw new AppError('INVALID_PAYLOAD', `${dir} has no PNG or JPEG files (.png, .jpg, .jpeg)`);
  const plan = planImages(spec, o);
  const shape = [images.length, ...itemDims(plan)];
  const shown = ignored.slice(0, 5).join(', ') + (ignored.length > 5 ? `, and ${ignored.length - 5} more` : '');
  return {
    input: spec.name,
    source: dir,
    note: `input ${spec.name}: ${images.length} image${images.length === 1 ? '' : 's'} from ${dir} -> ${plan.dtype}[${shape.join(',')}], ${describePlan(plan)}`,
    ignoredNote: ignored.length ? `${dir}: ignoring ${ignored.length} entr${ignored.length === 1 ? 'y' : 'ies'} that ${ignored.length === 1 ? 'is' : 'are'} not PNG or JPEG: ${shown}` : null,
    manifest: {
      input: spec.name, folder: path.resolve(dir), files: images, dtype: plan.dtype, shape, layout: plan.layout,
      resize: `${plan.width}x${plan.height}`, scale: plan.scale, mean: plan.mean, std: plan.std,
    },
    body: () => imageItems(dir, images, plan, shape),
  };
}

async function* imageItems(dir: string, images: string[], plan: ImagePlan, shape: number[]): AsyncGenerator<Uint8Array> {
  yield npyHeader(plan.dtype, shape);
  for (const name of images) {
    const file = path.join(dir, name);
    const img = decodeImage(new Uint8Array(await fs.promises.readFile(file)), file);
    yield toItem(resizeBilinear(img, plan.width, plan.height), plan);
  }
}

/** Writes the manifest as JSON; returns the file's path. */
export function writeManifest(file: string, manifest: InputsManifest): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
  return file;
}
