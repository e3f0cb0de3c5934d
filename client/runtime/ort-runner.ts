/**
 * Runs tasks with onnxruntime-web: one InferenceSession per (model, backend), model bytes from the
 * model cache, and a backend per model chosen by timing both on the model's first task.
 */
import * as ort from 'onnxruntime-web';
import type { TaskAssignment } from '../../shared/protocol.js';
import type { Tensor } from '../../shared/tensor.js';
import type { RunOutcome, Runner } from '../net/work-loop.js';
import { Backend, type BackendChoice, type Trial, pickFaster } from './backend-choice.js';
import { fetchModelBytes } from './model-cache.js';
import { fromOrtOutputs, toFeeds } from './ort-tensors.js';

export interface OrtRunnerOptions {
  /** Backends this browser can use; wasm always, webgpu when an adapter was found. */
  available: readonly Backend[];
  /** Use this backend for every model without measuring (the page's `?backend=` parameter). */
  forced?: Backend;
  /** Names the WebGPU adapter in reasons, e.g. "software adapter swiftshader". */
  gpuLabel?: string;
  /** Where onnxruntime-web's .mjs/.wasm files are served (default `/ort/`). */
  wasmPaths?: string;
  /** Told when a model's backend is settled (or changed after a failure). */
  onChoice?: (modelHash: string, choice: BackendChoice) => void;
  /** Told what the runner is doing when it is not just running ("timing webgpu"). */
  onActivity?: (message: string | null) => void;
  /** Replaceable for tests; defaults to the Cache Storage-backed download. */
  fetchModel?: (url: string) => Promise<Uint8Array>;
  /**
   * Told once when the WebGPU device is lost (driver reset, GPU removed, the browser reclaiming it). The
   * runner has then moved every model to WASM, unless WebGPU was forced: then tasks fail until a reload.
   */
  onDeviceLost?: (message: string) => void;
}

/**
 * Sets onnxruntime-web's global environment. Without cross-origin isolation there is no
 * SharedArrayBuffer, so wasm must run on one thread or session creation fails.
 */
export function configureOrt(wasmPaths: string): void {
  ort.env.wasm.wasmPaths = wasmPaths;
  if (!globalThis.crossOriginIsolated) ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
}

interface Timed { outputs: Tensor[]; ms: number }

/** Models whose sessions stay loaded; a volunteer who moves between jobs should not run out of memory. */
const MAX_LOADED_MODELS = 3;

export class OrtRunner implements Runner {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  private readonly choices = new Map<string, Backend>();
  private available: readonly Backend[];
  private watching: Promise<GPUDevice | null> | null = null;
  /** Why WebGPU is gone for good on this page, once its device was lost. */
  private gpuLost: string | null = null;
  /** Settles when the device is lost, so a WebGPU run in flight ends then rather than hang. */
  private readonly lost: Promise<never>;
  private markLost: (message: string) => void = () => {};

  constructor(private readonly opts: OrtRunnerOptions) {
    this.available = opts.available;
    this.lost = new Promise<never>((_resolve, reject) => {
      this.markLost = (message) => reject(new Error(`the WebGPU device was lost (${message})`));
    });
    this.lost.catch(() => {});
    configureOrt(opts.wasmPaths ?? new URL('/ort/', globalThis.location?.href).href);
  }

  /** Set once the WebGPU device was lost; the page then runs on WASM (or not at all when WebGPU was forced). */
  get deviceLost(): string | null {
    return this.gpuLost;
  }

  /**
   * Destroys onnxruntime-web's WebGPU device, as a driver reset would: for tests of the device-lost path.
   * Resolves false when no WebGPU session was ever made (there is no device to lose).
   */
  async loseDeviceForTest(): Promise<boolean> {
    const device = await this.watching;
    if (!device) return false;
    device.destroy();
    return true;
  }

  async run(task: TaskAssignment, modelUrl: string): Promise<RunOutcome> {
    if (this.gpuLost && this.opts.forced === Backend.webgpu) {
      throw new Error(`the WebGPU device was lost (${this.gpuLost}) and ?backend=webgpu allows nothing else; reload the page`);
    }
    const feeds = toFeeds(task.inputs);
    let backend = this.choices.get(task.modelHash);
    if (!backend) {
      const first = await this.choose(task, modelUrl, feeds);
      if (first.timed) return { outputs: first.timed.outputs, runMs: first.timed.ms, backend: first.backend };
      backend = first.backend;
    }
    try {
      return await this.runOn(backend, task, modelUrl, feeds);
    } catch (err) {
      // A GPU can be lost mid-session (driver reset, tab in the background too long). If WASM then
      // succeeds the model moves to WASM; if WASM fails too, the task itself is at fault and its error stands.
      // A lost device is the page's to handle (it hands the task back), not a reason to rerun it here.
      if (backend !== Backend.webgpu || this.opts.forced || this.gpuLost || !this.available.includes(Backend.wasm)) throw err;
      const outcome = await this.runOn(Backend.wasm, task, modelUrl, feeds);
      this.settle(task.modelHash, { backend: Backend.wasm, reason: `wasm: webgpu failed on a task (${errorText(err)}), switched` });
      void this.dropSession(task.modelHash, Backend.webgpu);
      return outcome;
    }
  }

  private async runOn(backend: Backend, task: TaskAssignment, modelUrl: string, feeds: Record<string, ort.Tensor>): Promise<RunOutcome> {
    const session = await this.session(task.modelHash, backend, () => fetchModel(this.opts, modelUrl));
    const run = timedRun(session, feeds);
    const { outputs, ms } = await (backend === Backend.webgpu ? Promise.race([run, this.lost]) : run);
    return { outputs, runMs: ms, backend };
  }

  /**
   * Settles a model's backend. When both are available and none is forced, runs the task on each
   * (one warm-up, one timed run) and keeps the faster; its timed outputs answer this task.
   */
  private async choose(task: TaskAssignment, modelUrl: string, feeds: Record<string, ort.Tensor>):
    Promise<{ backend: Backend; timed?: Timed }> {
    const { forced } = this.opts;
    const available = this.available;
    if (forced) {
      if (!available.includes(forced)) throw new Error(`backend ${forced} was asked for but is not available here`);
      this.settle(task.modelHash, { backend: forced, reason: `${forced}: forced by ?backend=${forced}` });
      return { backend: forced };
    }
    if (!available.includes(Backend.webgpu)) {
      const why = this.gpuLost ? `the WebGPU device was lost (${this.gpuLost})` : 'WebGPU is not available in this browser';
      this.settle(task.modelHash, { backend: Backend.wasm, reason: `wasm: ${why}` });
      return { backend: Backend.wasm };
    }

    const bytes = await fetchModel(this.opts, modelUrl);
    const trials: Trial[] = [];
    const results = new Map<Backend, Timed>();
    for (const backend of [Backend.wasm, Backend.webgpu]) {
      this.opts.onActivity?.(`timing ${backend} on the first task of this model`);
      try {
        const session = await this.session(task.modelHash, backend, () => Promise.resolve(bytes));
        await session.run(feeds); // warm-up: shader compilation and allocations happen here
        const timed = await timedRun(session, feeds);
        results.set(backend, timed);
        trials.push({ backend, ms: timed.ms });
      } catch (err) {
        trials.push({ backend, error: errorText(err) });
        void this.dropSession(task.modelHash, backend);
      }
    }
    this.opts.onActivity?.(null);

    const choice = pickFaster(trials, this.opts.gpuLabel);
    if (!choice) {
      throw new Error(`model failed on every backend: ${trials.map((t) => `${t.backend}: ${'error' in t ? t.error : ''}`).join('; ')}`);
    }
    this.settle(task.modelHash, choice);
    for (const b of results.keys()) if (b !== choice.backend) void this.dropSession(task.modelHash, b);
    return { backend: choice.backend, timed: results.get(choice.backend) };
  }

  private settle(modelHash: string, choice: BackendChoice): void {
    this.choices.set(modelHash, choice.backend);
    this.opts.onChoice?.(modelHash, choice);
  }

  private session(modelHash: string, backend: Backend, bytes: () => Promise<Uint8Array>): Promise<ort.InferenceSession> {
    const key = `${modelHash}|${backend}`;
    let session = this.sessions.get(key);
    if (session) {
      // Re-insert so the Map's order is least recently used first.
      this.sessions.delete(key);
      this.sessions.set(key, session);
    } else {
      this.evictModelsBeyond(MAX_LOADED_MODELS - 1, modelHash);
      session = bytes().then((b) => ort.InferenceSession.create(b, {
        executionProviders: [backend],
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
      }));
      if (backend === Backend.webgpu) void session.then(() => this.watchDevice(), () => {});
      this.sessions.set(key, session);
      // A failed creation must not stick: the next task may try again (e.g. after a network error).
      session.catch(() => { if (this.sessions.get(key) === session) this.sessions.delete(key); });
    }
    return session;
  }

  /**
   * Watches the GPUDevice that onnxruntime-web made with its first WebGPU session. Reading
   * `ort.env.webgpu.device` before then would make a device of its own, so this waits for a session.
   */
  private watchDevice(): void {
    if (this.watching) return;
    this.watching = Promise.resolve(ort.env.webgpu.device).then((device) => {
      void device.lost.then((info) => this.onDeviceLost(info.message || `reason: ${info.reason ?? 'unknown'}`));
      return device;
    }, () => null);
  }

  /** Moves every model off WebGPU: its sessions are dead and onnxruntime-web keeps the lost device. */
  private onDeviceLost(message: string): void {
    if (this.gpuLost) return;
    this.gpuLost = message;
    this.available = this.available.filter((b) => b !== Backend.webgpu);
    for (const key of [...this.sessions.keys()]) {
      const [model, backend] = key.split('|');
      if (backend === Backend.webgpu) void this.dropSession(model!, Backend.webgpu);
    }
    if (this.opts.forced !== Backend.webgpu) {
      for (const [model, backend] of this.choices) {
        if (backend === Backend.webgpu) this.settle(model, { backend: Backend.wasm, reason: `wasm: the WebGPU device was lost (${message}), switched` });
      }
    }
    this.opts.onDeviceLost?.(message);
    this.markLost(message);
  }

  /** Releases the sessions of the least recently used models until at most `keep` others remain. */
  private evictModelsBeyond(keep: number, current: string): void {
    const models = [...new Set([...this.sessions.keys()].map((k) => k.split('|')[0]))].filter((m) => m !== current);
    for (const m of models.slice(0, Math.max(0, models.length - keep))) {
      for (const b of [Backend.wasm, Backend.webgpu]) void this.dropSession(m, b);
    }
  }

  private async dropSession(modelHash: string, backend: Backend): Promise<void> {
    const key = `${modelHash}|${backend}`;
    const session = this.sessions.get(key);
    this.sessions.delete(key);
    try { await (await session)?.release(); } catch { /* already gone */ }
  }
}

async function timedRun(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Timed> {
  const t0 = performance.now();
  const out = await session.run(feeds);
  const ms = performance.now() - t0;
  return { outputs: fromOrtOutputs(session.outputNames, out), ms };
}

function fetchModel(opts: OrtRunnerOptions, url: string): Promise<Uint8Array> {
  return (opts.fetchModel ?? fetchModelBytes)(url);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
