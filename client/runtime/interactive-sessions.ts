/**
 * The page's interactive sessions: onnxruntime-web sessions for interactive requests, kept apart from the batch
 * ones (OrtRunner's), a few models at most. It lives in an inference worker of its own (the interactive worker,
 * see worker-runner.ts), so a request runs beside the batch task under way, in a runtime of its own, instead of
 * after it. The backend is the caller's to say: the one the batch path settled on for the model, else WASM (a
 * model's backend is timed once, on batch work; an interactive request must not wait seconds for WebGPU shaders
 * to compile on a guess). A request that fails on WebGPU is tried once on WASM, and the model stays there.
 */
import type * as ort from 'onnxruntime-web';
import type { InferRun } from '../../shared/infer.js';
import type { RunOutcome } from '../net/work-loop.js';
import { Backend } from './backend-choice.js';
import { fetchModelBytes } from './model-cache.js';
import type { OrtBuilds } from './ort-builds.js';
import { fromOrtOutputs, toFeeds } from './ort-tensors.js';

/** Models kept warm at once (the lane cools beyond as many; see MAX_WARM_MODELS). */
const MAX_SESSIONS = 4;

export interface InteractiveSessionsOptions {
  /** onnxruntime-web's builds, set up by the OrtRunner beside these sessions (in this worker or on the page). */
  builds: OrtBuilds;
  /** Replaceable for tests; defaults to the Cache Storage-backed download. */
  fetchModel?: (url: string) => Promise<Uint8Array>;
  /**
   * Runs `fn` when every onnxruntime call queued before it has ended. In a worker of its own the sessions have
   * their runtime to themselves; on the page's main thread (no worker) they share OrtRunner's, whose runs must
   * not interleave with theirs.
   */
  exclusive?: <T>(fn: () => Promise<T>) => Promise<T>;
}

interface Held { backend: Backend; session: Promise<ort.InferenceSession> }

export class InteractiveSessions {
  private readonly held = new Map<string, Held>();
  /** Models that failed on WebGPU here: they stay on WASM. */
  private readonly offGpu = new Set<string>();
  private lane: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: InteractiveSessionsOptions) {}

  /** Loads the model's session on `backend` (unless held already); resolves with the backend and the time it took. */
  async warm(modelHash: string, modelUrl: string, backend: Backend): Promise<{ backend: Backend; warmMs: number }> {
    const t0 = performance.now();
    const use = this.backendFor(modelHash, backend);
    await this.exclusive(() => this.session(modelHash, modelUrl, use));
    return { backend: use, warmMs: performance.now() - t0 };
  }

  async run(req: InferRun, backend: Backend): Promise<RunOutcome> {
    const use = this.backendFor(req.modelHash, backend);
    const feeds = toFeeds(req.inputs);
    try {
      return await this.exclusive(() => this.runOn(req, use, feeds));
    } catch (err) {
      if (use !== Backend.webgpu) throw err;
      // A lost or failing GPU: WASM answers this request, and the model's next ones.
      this.offGpu.add(req.modelHash);
      this.cool(req.modelHash);
      return this.exclusive(() => this.runOn(req, Backend.wasm, feeds));
    }
  }

  /** Lets the model's session go. */
  cool(modelHash: string): void {
    const h = this.held.get(modelHash);
    this.held.delete(modelHash);
    if (h) this.release(h);
  }

  private backendFor(modelHash: string, asked: Backend): Backend {
    return this.offGpu.has(modelHash) ? Backend.wasm : asked;
  }

  private async runOn(req: InferRun, backend: Backend, feeds: Record<string, ort.Tensor>): Promise<RunOutcome> {
    const session = await this.session(req.modelHash, req.modelUrl, backend);
    const t0 = performance.now();
    const out = await session.run(feeds);
    const runMs = performance.now() - t0;
    return { outputs: fromOrtOutputs(session.outputNames, out), runMs, backend };
  }

  /** The model's session on `backend`: held, or made now (one on another backend is let go). */
  private session(modelHash: string, modelUrl: string, backend: Backend): Promise<ort.InferenceSession> {
    const h = this.held.get(modelHash);
    if (h) this.held.delete(modelHash); // re-inserted below: the Map's order is least recently used first
    if (h && h.backend === backend) {
      this.held.set(modelHash, h);
      return h.session;
    }
    if (h) this.release(h);
    const bytes = (this.opts.fetchModel ?? fetchModelBytes)(modelUrl);
    const session = Promise.all([bytes, this.opts.builds.for(backend)]).then(([b, { InferenceSession }]) => InferenceSession.create(b, {
      executionProviders: [backend],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    }));
    const made: Held = { backend, session };
    this.held.set(modelHash, made);
    // A failed creation must not stick: the next request may try again (e.g. after a network error).
    session.catch(() => { if (this.held.get(modelHash) === made) this.held.delete(modelHash); });
    for (const old of [...this.held.keys()].slice(0, Math.max(0, this.held.size - MAX_SESSIONS))) {
      this.release(this.held.get(old)!);
      this.held.delete(old);
    }
    return session;
  }

  /** Releases a session once the runs queued before it have ended. */
  private release(h: Held): void {
    void this.exclusive(async () => { await (await h.session.catch(() => null))?.release(); }).catch(() => {});
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.opts.exclusive) return this.opts.exclusive(fn);
    const run = this.lane.then(fn);
    this.lane = run.catch(() => {});
    return run;
  }
}
