/**
 * `tabgrid infer MODEL.onnx|HASH --inputs X.npy|DIR [--out DIR] [--repeat N]`: one interactive request (or N in a
 * row), answered by a warm volunteer. Prints the latency (p50/p95 with --repeat) and writes the outputs as .npy.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../shared/errors.js';
import type { InferRequest, InferResponse, InferTensor } from '../shared/infer.js';
import { readNpy, writeNpy } from '../shared/npy.js';
import type { ModelView } from '../shared/rest-types.js';
import type { DType } from '../shared/tensor.js';

/** What `infer` needs of the REST client. */
export interface InferApi {
  uploadModel(bytes: Uint8Array): Promise<ModelView>;
  infer(req: InferRequest): Promise<InferResponse>;
}

export interface InferOptions {
  inputs: string;
  out?: string;
  repeat?: number;
  replicas?: 1 | 2;
  timeoutMs?: number;
}

export interface InferSummary { answers: InferResponse[]; wallMs: number[]; files: string[] }

const HASH = /^[0-9a-f]{64}$/;

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

/** The request's inputs: one .npy for a one-input model, or a folder of `<input-name>.npy`. */
function readInputs(where: string, model: ModelView): Record<string, InferTensor> {
  const files: [string, string][] = fs.statSync(where).isDirectory()
    ? model.inputs.map((s) => [s.name, path.join(where, `${s.name}.npy`)])
    : [[model.inputs[0]!.name, where]];
  if (!fs.statSync(where).isDirectory() && model.inputs.length > 1) {
    throw new AppError('INVALID_PAYLOAD', `the model takes ${model.inputs.length} inputs (${model.inputs.map((s) => s.name).join(', ')}): give a folder of <name>.npy`);
  }
  const out: Record<string, InferTensor> = {};
  for (const [name, file] of files) {
    if (!fs.existsSync(file)) throw new AppError('INVALID_PAYLOAD', `no ${file} for input ${name}`);
    const a = readNpy(new Uint8Array(fs.readFileSync(file)));
    out[name] = { dtype: a.dtype, dims: a.shape, data: Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).toString('base64') };
  }
  return out;
}

export async function runInfer(api: InferApi, model: string, o: InferOptions, say: (s: string) => void): Promise<InferSummary> {
  const view = HASH.test(model) ? undefined : await api.uploadModel(new Uint8Array(fs.readFileSync(model)));
  const hash = view?.hash ?? model;
  const inputs = readInputs(o.inputs, view ?? await modelOf(api, hash));
  const req: InferRequest = { model: hash, inputs, replicas: o.replicas ?? 1, ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}) };
  const answers: InferResponse[] = [];
  const wallMs: number[] = [];
  for (let i = 0; i < Math.max(1, o.repeat ?? 1); i++) {
    const t0 = performance.now();
    answers.push(await api.infer(req));
    wallMs.push(performance.now() - t0);
  }
  const last = answers[answers.length - 1]!;
  if (answers.length === 1) {
    say(`answered in ${wallMs[0]!.toFixed(1)} ms (server ${last.ms.toFixed(1)} ms, model run ${last.runMs.toFixed(1)} ms on ${last.backend}; `
      + `${last.verified === 'two-origins' ? 'two volunteers of distinct origins agreed' : 'a vetted volunteer answered'}${last.hedged ? '; hedged' : ''})`);
  } else {
    const server = answers.map((a) => a.ms);
    say(`${answers.length} requests: p50 ${percentile(wallMs, 50).toFixed(1)} ms, p95 ${percentile(wallMs, 95).toFixed(1)} ms `
      + `(server p50 ${percentile(server, 50).toFixed(1)} ms, p95 ${percentile(server, 95).toFixed(1)} ms; hedged ${answers.filter((a) => a.hedged).length})`);
  }
  const files: string[] = [];
  if (o.out) {
    fs.mkdirSync(o.out, { recursive: true });
    for (const [name, t] of Object.entries(last.outputs)) {
      const file = path.join(o.out, `${name.replace(/[^\w.-]/g, '_')}.npy`);
      fs.writeFileSync(file, writeNpy(t.dtype as DType, t.dims, new Uint8Array(Buffer.from(t.data, 'base64'))));
      files.push(file);
    }
  }
  return { answers, wallMs, files };
}

/** A model already on the server, by hash (its inputs name the .npy files to read). */
async function modelOf(api: InferApi, hash: string): Promise<ModelView> {
  const get = (api as InferApi & { getModel?(h: string): Promise<ModelView> }).getModel;
  if (!get) throw new AppError('INVALID_PAYLOAD', 'give the model file (this client cannot look a model up by hash)');
  return get.call(api, hash);
}
