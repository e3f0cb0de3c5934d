/**
 * `tabgrid submit`: uploads a model and its inputs (.npy, or a folder of .npy named after the model's
 * inputs), creates the job, then follows it with a progress bar or prints its id (--detach).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { JobView } from '../shared/protocol.js';
import { type ApiClient, ApiError } from './api-client.js';
import { ProgressBar } from './progress.js';

export interface SubmitOptions {
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
}

/** Resolves input name -> .npy path for the model's declared inputs. */
function inputFiles(inputs: string, modelInputs: string[]): Record<string, string> {
  if (!fs.existsSync(inputs)) throw new ApiError(0, 'NOT_FOUND', `inputs not found: ${inputs}`);
  if (fs.statSync(inputs).isDirectory()) {
    const files: Record<string, string> = {};
    for (const name of modelInputs) {
      const file = path.join(inputs, `${name}.npy`);
      if (!fs.existsSync(file)) {
        throw new ApiError(0, 'SHAPE_MISMATCH', `${inputs} has no ${name}.npy; the model's inputs are: ${modelInputs.join(', ')} (one .npy each)`);
      }
      files[name] = file;
    }
    return files;
  }
  if (modelInputs.length !== 1) {
    throw new ApiError(0, 'SHAPE_MISMATCH', `the model has ${modelInputs.length} inputs (${modelInputs.join(', ')}): pass a folder with one .npy per input`);
  }
  return { [modelInputs[0]]: inputs };
}

export async function submit(api: ApiClient, modelPath: string, opts: SubmitOptions, log: (s: string) => void): Promise<JobView> {
  const model = await api.uploadModel(fs.readFileSync(modelPath));
  log(`model ${model.hash.slice(0, 12)}… inputs ${model.inputs.map((i) => `${i.name} ${i.dtype}[${i.shape.join(',')}]`).join(', ')}`);
  const files = inputFiles(opts.inputs, model.inputs.map((i) => i.name));
  const inputs: Record<string, string> = {};
  for (const [name, file] of Object.entries(files)) {
    const ds = await api.uploadDataset(fs.readFileSync(file));
    inputs[name] = ds.hash;
    log(`input ${name}: ${ds.dtype}[${ds.shape.join(',')}] from ${file}`);
  }
  const job = await api.createJob({
    model: model.hash, inputs, name: opts.name ?? path.basename(modelPath),
    batchSize: opts.batch, replicas: opts.replicas, rtol: opts.rtol, atol: opts.atol,
    stages: opts.stages, cuts: opts.cuts ? opts.cuts.split(',').map((c) => c.trim()).filter(Boolean) : undefined,
    canaryRate: opts.canaryRate, adaptive: opts.adaptive,
  });
  const stages = job.stages.length > 1 ? ` over ${job.stages.length} pipeline stages` : '';
  log(`job ${job.id}: ${job.items} items in ${job.tasks.total} tasks of ${job.batchSize}${stages}, ${job.replicas} replicas each`);
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
