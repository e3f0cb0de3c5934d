/**
 * `tabgrid submit`: uploads a model and its inputs (.npy, a folder of .npy named after the model's inputs, or
 * a folder of images), creates the job, then follows it with a progress bar or prints its id (--detach).
 * Inputs stream to the server converted to what the model takes (see npy-input.ts and image-input.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../shared/errors.js';
import type { JobView } from '../shared/protocol.js';
import type { ApiClient } from './api-client.js';
import { type ImageFlags, parseImageOptions } from './image-options.js';
import { writeManifest } from './image-input.js';
import { inputSources } from './input-sources.js';
import { ProgressBar } from './progress.js';
import { MANIFEST_NAME, pendingManifestPath } from './results.js';

export interface SubmitOptions extends ImageFlags {
  inputs: string;
  batch?: number;
  replicas?: number;
  rtol?: number;
  atol?: number;
  name?: string;
  detach?: boolean;
  stages?: number;
  cuts?: string;
  canaryRate?: number;
  adaptive?: boolean;
  /** Keep every replica's outputs once the job ends (only the results' are kept otherwise). */
  keepReplicaOutputs?: boolean;
  /** Folder for the results (and the manifest of image inputs). */
  out?: string;
}

export async function submit(api: ApiClient, modelPath: string, opts: SubmitOptions, log: (s: string) => void): Promise<JobView> {
  const imageOptions = parseImageOptions({ resize: opts.resize, layout: opts.layout, mean: opts.mean, std: opts.std, scale: opts.scale });
  if (!fs.existsSync(modelPath) || !fs.statSync(modelPath).isFile()) throw new AppError('NOT_FOUND', `model not found: ${modelPath}`);
  const model = await api.uploadModel(fs.readFileSync(modelPath));
  log(`model ${model.hash.slice(0, 12)}… inputs ${model.inputs.map((i) => `${i.name} ${i.dtype}[${i.shape.join(',')}]`).join(', ')}`);
  const sources = inputSources(opts.inputs, model.inputs, imageOptions);
  if (sources.images?.ignoredNote) log(sources.images.ignoredNote);
  const inputs: Record<string, string> = {};
  for (const input of sources.inputs) {
    if (input.note) log(input.note);
    const ds = await api.uploadDataset(input.body());
    inputs[input.input] = ds.hash;
    log(`input ${input.input}: ${ds.dtype}[${ds.shape.join(',')}] from ${input.source}`);
  }
  const job = await api.createJob({
    model: model.hash, inputs, name: opts.name ?? path.basename(modelPath),
    batchSize: opts.batch, replicas: opts.replicas, rtol: opts.rtol, atol: opts.atol,
    stages: opts.stages, cuts: opts.cuts ? opts.cuts.split(',').map((c) => c.trim()).filter(Boolean) : undefined,
    canaryRate: opts.canaryRate, adaptive: opts.adaptive, ...(opts.keepReplicaOutputs ? { keepReplicaOutputs: true } : {}),
  });
  const stages = job.stages.length > 1 ? ` over ${job.stages.length} pipeline stages` : '';
  log(`job ${job.id}: ${job.items} items in ${job.tasks.total} tasks of ${job.batchSize}${stages}, ${job.replicas} replicas each`);
  if (sources.images) {
    const file = writeManifest(opts.out ? path.join(opts.out, MANIFEST_NAME) : pendingManifestPath(job.id), { job: job.id, ...sources.images.manifest });
    const later = opts.out ? '' : ` (\`tabgrid results ${job.id} --out DIR\` run here copies it to DIR/${MANIFEST_NAME})`;
    log(`inputs manifest (the file behind each item): ${file}${later}`);
  }
  return job;
}

/** Follows a job to its end with a progress bar; returns the final view. */
export async function follow(api: ApiClient, id: string): Promise<JobView> {
  const bar = new ProgressBar();
  try {
    return await api.waitJob(id, (j) => bar.update(j));
  } finally {
    bar.done();
  }
}
