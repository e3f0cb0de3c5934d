/**
 * The headless worker's Runner: onnxruntime-node on the CPU, one session per model, model bytes
 * fetched once over HTTP from the server.
 */
import * as ort from 'onnxruntime-node';
import type { TaskAssignment } from '../shared/protocol.js';
import { type DType, type Tensor, alignedCopy, asBytes } from '../shared/tensor.js';
import type { RunOutcome, Runner } from '../client/net/work-loop.js';


/** Turns wire bytes into an onnxruntime tensor (typed arrays need aligned buffers). */
export function toOrtTensor(dtype: DType, dims: number[], data: ArrayBuffer | Uint8Array): ort.Tensor {
  const bytes = asBytes(data);
  const buf = alignedCopy(bytes);
  const views: Record<DType, () => ArrayBufferView> = {
    float32: () => new Float32Array(buf), float64: () => new Float64Array(buf), int64: () => new BigInt64Array(buf),
    int32: () => new Int32Array(buf), int8: () => new Int8Array(buf), uint8: () => new Uint8Array(buf), bool: () => new Uint8Array(buf),
  };
  return new ort.Tensor(dtype, views[dtype]() as never, dims);
}

export function fromOrtTensor(name: string, t: ort.Tensor): Tensor {
  const data = t.data as ArrayBufferView;
  return { name, dtype: t.type as DType, dims: Array.from(t.dims), data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

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
