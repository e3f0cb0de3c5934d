/**
 * The headless worker's Runner: onnxruntime-node on the CPU, one session per model, model bytes
 * fetched once over HTTP from the server. Interactive requests get sessions of their own (a small cache apart
 * from the batch sessions, so a warm model stays warm whatever batch jobs come and go).
 *
 * onnxruntime-node runs a session on the JS thread (its `run` is a setImmediate around a synchronous call), so an
 * interactive request cannot run beside a batch task: it takes the very next slot. A batch run therefore waits one
 * turn of the event loop before it starts (the socket is read in that turn, so a request that came in during the
 * last batch run is seen) and then lets every interactive request in hand run first. (A request read in the one turn
 * between that look and onnxruntime's own setImmediate still waits for the batch run: a window of microseconds.)
 */
import * as ort from 'onnxruntime-node';
import type { InferRun } from '../shared/infer.js';
import type { TaskAssignment, WireTensor } from '../shared/protocol.js';
import { type DType, DTYPES, itemSize } from '../shared/tensor.js';
import { fromOrtTensor, toOrtTensor } from '../server/onnx/ort-tensors.js';
import { WARM_UP_MODEL } from '../client/runtime/warm-up-model.js';
import type { RunOutcome, Runner } from '../client/net/work-loop.js';

/** Interactive sessions kept at once; the least recently used goes beyond this (the lane also cools beyond 4). */
const MAX_INTERACTIVE_SESSIONS = 4;

/** Sessions by model hash, each made once from the model's bytes fetched over HTTP. */
class SessionCache {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  constructor(private readonly options: ort.InferenceSession.SessionOptions, private readonly max = Infinity) {}

  get(hash: string, url: string): Promise<ort.InferenceSession> {
    let s = this.sessions.get(hash);
    if (s) {
      this.sessions.delete(hash); // re-inserted: the Map's order is least recently used first
    } else {
      s = (async () => {
        const res = await fetch(url);
        if (!res.ok) throw new Error(`fetching model ${hash}: HTTP ${res.status}`);
        return ort.InferenceSession.create(new Uint8Array(await res.arrayBuffer()), this.options);
      })();
      const made = s;
      made.catch(() => { if (this.sessions.get(hash) === made) this.sessions.delete(hash); });
    }
    this.sessions.set(hash, s);
    while (this.sessions.size > this.max) void this.drop(this.sessions.keys().next().value!);
    return s;
  }

  has(hash: string): boolean {
    return this.sessions.has(hash);
  }

  async drop(hash: string): Promise<void> {
    const s = this.sessions.get(hash);
    this.sessions.delete(hash);
    await (await s?.catch(() => null))?.release();
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((h) => this.drop(h)));
  }
}

export interface NodeRunnerOptions {
  /**
   * Threads onnxruntime may use for one run (0 or absent: its default, one per core): a volunteer donating part of
   * the machine gives this many cores.
   */
  threads?: number;
}

export class NodeRunner implements Runner {
  private readonly batch: SessionCache;
  private readonly interactive: SessionCache;
  /** Interactive requests given to this runner and not yet ended: batch runs wait while there are any. */
  private inFlight = 0;
  private whenIdle: (() => void)[] = [];

  constructor(opts: NodeRunnerOptions = {}) {
    const options: ort.InferenceSession.SessionOptions = opts.threads ? { intraOpNumThreads: opts.threads } : {};
    this.batch = new SessionCache(options);
    this.interactive = new SessionCache(options, MAX_INTERACTIVE_SESSIONS);
  }

  /**
   * Readies what a first task would otherwise pay for once the worker is already counted as connected: onnxruntime's
   * native environment (made with the first session, ~80 ms of CPU here) and Node's `fetch` (undici, loaded on its
   * first call, ~40 ms), by which a task's model comes. `url` is any address of the server; its answer is not read.
   */
  async warmUp(url: string): Promise<void> {
    const session = await ort.InferenceSession.create(WARM_UP_MODEL);
    await session.release();
    await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(2_000) }).then((res) => res.body?.cancel(), () => {});
  }

  async run(task: TaskAssignment, modelUrl: string): Promise<RunOutcome> {
    const session = await this.batch.get(task.modelHash, modelUrl);
    await new Promise<void>((r) => setImmediate(r));
    while (this.inFlight > 0) await new Promise<void>((r) => this.whenIdle.push(r));
    return runSession(session, task.inputs, 'cpu');
  }

  /** Loads the model's interactive session and runs it once on zeros, so the first request meets a warm one. */
  async warmInteractive(modelHash: string, modelUrl: string): Promise<{ backend: string; warmMs: number }> {
    const t0 = performance.now();
    const fresh = !this.interactive.has(modelHash);
    const session = await this.interactive.get(modelHash, modelUrl);
    if (fresh) await session.run(zeroFeeds(session)).catch(() => {}); // a model whose shapes zeros do not fit warms on its first request
    return { backend: 'cpu', warmMs: performance.now() - t0 };
  }

  async runInteractive(req: InferRun): Promise<RunOutcome> {
    this.inFlight++;
    try {
      const session = await this.interactive.get(req.modelHash, req.modelUrl);
      return await runSession(session, req.inputs, 'cpu');
    } finally {
      if (--this.inFlight === 0) for (const wake of this.whenIdle.splice(0)) wake();
    }
  }

  coolInteractive(modelHash: string): void {
    void this.interactive.drop(modelHash);
  }

  async close(): Promise<void> {
    await Promise.all([this.batch.close(), this.interactive.close()]);
  }
}

async function runSession(session: ort.InferenceSession, inputs: WireTensor[], backend: string): Promise<RunOutcome> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const t of inputs) feeds[t.name] = toOrtTensor(t.dtype as DType, t.dims, t.data);
  const t0 = performance.now();
  const out = await session.run(feeds);
  const runMs = performance.now() - t0;
  return { outputs: session.outputNames.map((n) => fromOrtTensor(n, out[n]!)), runMs, backend };
}

/** Zero tensors for a session's inputs, a symbolic axis taken as 1 (for a warm-up run). */
function zeroFeeds(session: ort.InferenceSession): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const m of session.inputMetadata) {
    if (!m.isTensor) continue;
    const type = m.type as DType;
    if (!DTYPES.includes(type)) continue;
    const dims = m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
    feeds[m.name] = toOrtTensor(type, dims, new Uint8Array(dims.reduce((a, d) => a * d, 1) * itemSize(type)));
  }
  return feeds;
}
