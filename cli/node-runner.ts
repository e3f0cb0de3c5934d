/**
 * The headless worker's Runner: onnxruntime-node on the CPU, one session per model, model bytes
 * fetched once over HTTP from the server.
 */
import * as ort from 'onnxruntime-node';
import type { TaskAssignment } from '../shared/protocol.js';
import type { DType } from '../shared/tensor.js';
import { fromOrtTensor, toOrtTensor } from '../server/onnx/ort-tensors.js';
import type { RunOutcome, Runner } from '../client/net/work-loop.js';

export class NodeRunner implements Runner {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  private session(hash: string, url: string): Promise<ort.InferenceSession> {
    let s = this.sessions.get(hash);
    if (!s) {
      s = (async () => {
        const res = await fetch(url);
        if (!res.ok) throw new Error(`fetching model ${hash}: HTTP ${res.status}`);
        return ort.InferenceSession.create(new Uint8Array(await res.arrayBuffer()));
      })();
      s.catch(() => this.sessions.delete(hash));
      this.sessions.set(hash, s);
    }
    return s;
  }

  async run(task: TaskAssignment, modelUrl: string): Promise<RunOutcome> {
    const session = await this.session(task.modelHash, modelUrl);
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of task.inputs) feeds[t.name] = toOrtTensor(t.dtype as DType, t.dims, t.data);
    const t0 = performance.now();
    const out = await session.run(feeds);
    const runMs = performance.now() - t0;
    return { outputs: session.outputNames.map((n) => fromOrtTensor(n, out[n])), runMs, backend: 'cpu' };
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await (await s.catch(() => null))?.release();
    this.sessions.clear();
  }
}
