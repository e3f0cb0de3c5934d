/**
 * Runs tasks with onnxruntime-web: one InferenceSession per (model, backend), model bytes from the
 * model cache, and a backend per model chosen by timing both. A model's first tasks run on WASM at once while
 * WebGPU is timed beside them (in a trial worker, see TimeBackends); the model moves to WebGPU if it was faster.
 */
import type * as ort from 'onnxruntime-web';
import { ORT_PATH } from '../../shared/ort-path.js';
import type { TaskAssignment, WireTensor } from '../../shared/protocol.js';
import type { Tensor } from '../../shared/tensor.js';
import type { RunOutcome, Runner } from '../net/work-loop.js';
import { Backend, type BackendChoice, type Trial, formatTrials, pickFaster } from './backend-choice.js';
import { fetchModelBytes } from './model-cache.js';
import { OrtBuilds } from './ort-builds.js';
import { fromOrtOutputs, toFeeds } from './ort-tensors.js';
import { WARM_UP_MODEL } from './warm-up-model.js';

/** What a trial times: a model's bytes, one task's inputs, and the backends to time on them. */
export interface TrialRequest { modelHash: string; model: Uint8Array; inputs: WireTensor[]; backends: Backend[] }

/**
 * Times backends on a model apart from the runner's own tasks (each a warm-up and a timed run) and says how each
 * did. The page's runner hands this to a second inference worker, so the timing never holds a task.
 */
export type TimeBackends = (request: TrialRequest) => Promise<Trial[]>;

export interface OrtRunnerOptions {
  /** Backends this browser can use; wasm always, webgpu when an adapter was found. */
  available: readonly Backend[];
  /** Use this backend for every model without measuring (the page's `?backend=` parameter). */
  forced?: Backend;
  /** Names the WebGPU adapter in reasons, e.g. "software adapter swiftshader". */
  gpuLabel?: string;
  /** Where onnxruntime-web's .mjs/.wasm files are served (default ORT_PATH on this page's origin). */
  wasmPaths?: string;
  /**
   * Times the backends on a model's first task beside the tasks. Without it the runner times them itself,
   * between its tasks: the first task still goes first, but the next waits for the timing.
   */
  timeBackends?: TimeBackends;
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

interface Timed { outputs: Tensor[]; ms: number }

/** Models whose sessions stay loaded; a volunteer who moves between jobs should not run out of memory. */
const MAX_LOADED_MODELS = 3;

export class OrtRunner implements Runner {
  /** onnxruntime-web's builds: the CPU-only one for WASM, the JSEP one loaded with the first WebGPU session. */
  readonly builds: OrtBuilds;
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  private readonly choices = new Map<string, Backend>();
  private available: readonly Backend[];
  private watching: Promise<GPUDevice | null> | null = null;
  /** Why WebGPU is gone for good on this page, once its device was lost. */
  private gpuLost: string | null = null;
  /** Settles when the device is lost, so a WebGPU run in flight ends then rather than hang. */
  private readonly lost: Promise<never>;
  private markLost: (message: string) => void = () => {};
  /** Every onnxruntime call runs here, one at a time: runs of two sessions must not interleave in one runtime. */
  private lane: Promise<unknown> = Promise.resolve();
  /** Models on WASM for now while their backends are timed, with the timing under way. */
  private readonly trials = new Map<string, Promise<void>>();
  private warming: Promise<void> | null = null;
  /** Model bytes while a model's backends are timed: its first task and its timing share one download. */
  private readonly downloads = new Map<string, Promise<Uint8Array>>();

  constructor(private readonly opts: OrtRunnerOptions) {
    this.available = opts.available;
    this.lost = new Promise<never>((_resolve, reject) => {
      this.markLost = (message) => reject(new Error(`the WebGPU device was lost (${message})`));
    });
    this.lost.catch(() => {});
    this.builds = new OrtBuilds(opts.wasmPaths ?? new URL(ORT_PATH, globalThis.location?.href).href);
  }

  /**
   * The volunteer opted in: fetches, compiles and starts the WebAssembly runtime now (a session for a tiny
   * model), while the connection is made and the first task comes, instead of after the task's model arrived.
   * A failure here is left for the first task to meet and report.
   */
  warmUp(): Promise<void> {
    this.warming ??= this.exclusive(async () => {
      const session = await this.builds.wasm.InferenceSession.create(WARM_UP_MODEL, { executionProviders: [Backend.wasm], logSeverityLevel: 3 });
      await session.release();
    }).catch(() => {});
    return this.warming;
  }

  /** Resolves once the backends of every model timed so far are settled (for tests and the trial's caller). */
  async settled(): Promise<void> {
    while (this.trials.size > 0) await Promise.all(this.trials.values());
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
    const known = this.choices.get(task.modelHash);
    const backend = known ?? this.choose(task);
    const timeAfter = !known && !this.opts.forced && this.available.includes(Backend.webgpu);
    // A model without a session downloads now, while the lane may still be loading the runtime (the warm-up),
    // not once the lane is free. The first task and the timing share that download.
    const download = this.sessions.has(`${task.modelHash}|${backend}`) ? undefined : fetchModel(this.opts, modelUrl);
    download?.catch(() => {}); // a failure is the task's to report, when its session is made
    if (timeAfter && download) this.downloads.set(task.modelHash, download);
    const running = this.exclusive(() => this.runOn(backend, task, modelUrl, feeds, download));
    if (timeAfter) this.timeAfter(task, running);
    try {
      return await running;
    } catch (err) {
      // WASM failed while WebGPU is still being timed: the timing may yet find WebGPU able to run the model.
      const timing = this.trials.get(task.modelHash);
      if (backend === Backend.wasm && timing) {
        await timing;
        if (this.choices.get(task.modelHash) === Backend.webgpu) return this.exclusive(() => this.runOn(Backend.webgpu, task, modelUrl, feeds));
      }
      // A GPU can be lost mid-session (driver reset, tab in the background too long). If WASM then
      // succeeds the model moves to WASM; if WASM fails too, the task itself is at fault and its error stands.
      // A lost device is the page's to handle (it hands the task back), not a reason to rerun it here.
      if (backend !== Backend.webgpu || this.opts.forced || this.gpuLost || !this.available.includes(Backend.wasm)) throw err;
      const outcome = await this.exclusive(() => this.runOn(Backend.wasm, task, modelUrl, feeds));
      this.settle(task.modelHash, { backend: Backend.wasm, reason: `wasm: webgpu failed on a task (${errorText(err)}), switched` });
      void this.dropSession(task.modelHash, Backend.webgpu);
      return outcome;
    }
  }

  private async runOn(
    backend: Backend, task: TaskAssignment, modelUrl: string, feeds: Record<string, ort.Tensor>, download?: Promise<Uint8Array>,
  ): Promise<RunOutcome> {
    const session = await this.session(task.modelHash, backend, () => download ?? this.downloads.get(task.modelHash) ?? fetchModel(this.opts, modelUrl));
    const run = timedRun(session, feeds);
    const { outputs, ms } = await (backend === Backend.webgpu ? Promise.race([run, this.lost]) : run);
    return { outputs, runMs: ms, backend };
  }

  /**
   * A model's first task: its backend when forced or when WASM is all there is; otherwise WASM for now, while
   * the backends are timed beside the tasks (see timeAfter).
   */
  private choose(task: TaskAssignment): Backend {
    const { forced } = this.opts;
    if (forced) {
      if (!this.available.includes(forced)) throw new Error(`backend ${forced} was asked for but is not available here`);
      this.settle(task.modelHash, { backend: forced, reason: `${forced}: forced by ?backend=${forced}` });
      return forced;
    }
    if (!this.available.includes(Backend.webgpu)) {
      const why = this.gpuLost ? `the WebGPU device was lost (${this.gpuLost})` : 'WebGPU is not available in this browser';
      this.settle(task.modelHash, { backend: Backend.wasm, reason: `wasm: ${why}` });
      return Backend.wasm;
    }
    this.settle(task.modelHash, { backend: Backend.wasm, reason: 'wasm for now: webgpu is being timed beside the first tasks' });
    return Backend.wasm;
  }

  /**
   * Times the backends on the first task's inputs once that task has run (its result goes first, and the
   * timing's own runtime and shader compilation do not compete with it), in a trial worker when there is one,
   * else on this runner between tasks; then settles the model's backend on what was faster.
   */
  private timeAfter(task: TaskAssignment, first: Promise<unknown>): void {
    const timing = (async () => {
      await first.catch(() => {});
      this.opts.onActivity?.('timing webgpu and wasm on the first task of this model');
      let trials: Trial[];
      try {
        const model = await (this.downloads.get(task.modelHash) ?? Promise.reject(new Error('the model was not kept for the timing')));
        const request: TrialRequest = { modelHash: task.modelHash, model, inputs: task.inputs, backends: [Backend.wasm, Backend.webgpu] };
        trials = this.opts.timeBackends ? await this.opts.timeBackends(request) : await this.exclusive(() => this.timeBackends(request));
      } catch (err) {
        trials = [{ backend: Backend.webgpu, error: errorText(err) }];
      } finally {
        this.downloads.delete(task.modelHash);
      }
      if (this.gpuLost) {
        this.settle(task.modelHash, { backend: Backend.wasm, reason: `wasm: the WebGPU device was lost (${this.gpuLost})` });
        return;
      }
      const choice = pickFaster(trials, this.opts.gpuLabel);
      if (!choice) {
        this.settle(task.modelHash, { backend: Backend.wasm, reason: `wasm: the timing failed (${formatTrials(trials, this.opts.gpuLabel)}), staying` });
        return;
      }
      this.settle(task.modelHash, choice);
      if (choice.backend === Backend.webgpu) void this.exclusive(() => this.dropSession(task.modelHash, Backend.wasm));
    })().finally(() => {
      this.trials.delete(task.modelHash);
      if (this.trials.size === 0) this.opts.onActivity?.(null);
    });
    this.trials.set(task.modelHash, timing);
  }

  /**
   * Times each backend on a model (a warm-up run, where shaders compile and buffers are allocated, then a timed
   * run) in sessions of its own, released after. What a trial worker runs; a runner without one runs it itself.
   */
  async timeBackends(request: TrialRequest): Promise<Trial[]> {
    const feeds = toFeeds(request.inputs);
    const trials: Trial[] = [];
    for (const backend of request.backends) {
      let session: ort.InferenceSession | null = null;
      try {
        const { InferenceSession } = await this.builds.for(backend);
        session = await InferenceSession.create(request.model, { executionProviders: [backend], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
        await session.run(feeds);
        trials.push({ backend, ms: (await timedRun(session, feeds)).ms });
      } catch (err) {
        trials.push({ backend, error: errorText(err) });
      } finally {
        await session?.release().catch(() => {});
      }
    }
    return trials;
  }

  /**
   * Runs `fn` once every onnxruntime call queued before it has ended (public for the interactive sessions that share
   * this runtime when the page has no worker).
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lane.then(fn);
    this.lane = run.catch(() => {});
    return run;
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
      // The JSEP build (for WebGPU) loads while the model downloads.
      session = Promise.all([bytes(), this.builds.for(backend)]).then(([b, { InferenceSession }]) => InferenceSession.create(b, {
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
   * Watches the GPUDevice that onnxruntime-web's JSEP build made with its first WebGPU session. Reading
   * `env.webgpu.device` before then would make a device of its own, so this waits for a session.
   */
  private watchDevice(): void {
    if (this.watching) return;
    this.watching = this.builds.for(Backend.webgpu).then((gpu) => gpu.env.webgpu.device).then((device) => {
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
