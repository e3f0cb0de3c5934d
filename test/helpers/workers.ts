/**
 * Headless workers (the real WorkLoop on onnxruntime-node), run in the test's process.
 */
import * as ort from 'onnxruntime-node';
import { WorkLoop } from '../../client/net/work-loop.js';
import { NodeRunner } from '../../cli/node-runner.js';
import { fromOrtTensor, toOrtTensor } from '../../server/onnx/ort-tensors.js';
import { readNpy } from '../../shared/npy.js';
import type { Tensor } from '../../shared/tensor.js';

export interface TestWorkers { loops: WorkLoop[]; stop(): Promise<void> }

export interface TestWorkerOptions {
  /** The local address each worker connects from, by index (see `loopbacks`); unset: the system's choice. */
  bind?: (i: number) => string | undefined;
}

/** Distinct loopback addresses, 127.0.0.2, 127.0.0.3, ...: workers on one machine that the server sees as distinct origins. */
export const loopbacks = (i: number): string => `127.0.0.${2 + i}`;

export function startWorkers(url: string, n: number, slots = 2, o: TestWorkerOptions = {}): TestWorkers {
  const runners = Array.from({ length: n }, () => new NodeRunner());
  const loops = runners.map((runner, i) => new WorkLoop({
    serverUrl: url, slots, runner, hello: { kind: 'node', backends: ['cpu'] }, bind: o.bind?.(i),
  }));
  for (const l of loops) l.start();
  return {
    loops,
    async stop() {
      for (const l of loops) l.stop();
      for (const r of runners) await r.close();
    },
  };
}

/** The reference: the whole model run once by onnxruntime-node on .npy inputs. */
export async function reference(model: Uint8Array, inputs: Record<string, Uint8Array>): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(model);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, npy] of Object.entries(inputs)) {
    const a = readNpy(npy);
    feeds[name] = toOrtTensor(a.dtype, a.shape, a.data);
  }
  const out = await session.run(feeds);
  const res: Record<string, Tensor> = {};
  for (const name of session.outputNames) res[name] = fromOrtTensor(name, out[name]);
  await session.release();
  return res;
}

/** Reads a result .npy as a Tensor named `name`. */
export function npyTensor(name: string, bytes: Uint8Array): Tensor {
  const a = readNpy(bytes);
  return { name, dtype: a.dtype, dims: a.shape, data: a.data };
}
