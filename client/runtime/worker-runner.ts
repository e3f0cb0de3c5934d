/**
 * The page's Runner: hands each task to the inference worker (inference-worker.ts) and waits for its
 * outputs, so session.run never holds the main thread and the socket's traffic flows while a task runs.
 * When that worker asks for the backends of a new model to be timed, a second instance of it (the trial
 * worker) does so with a runtime of its own, beside the tasks, and is ended after.
 * Where a worker cannot be started, the page runs onnxruntime itself (OrtRunner, loaded only then).
 * Interactive requests go to a third instance, the interactive worker (started with the first of them), whose
 * sessions and runtime are its own: a request runs beside the batch task under way rather than after it.
 */
import type { InferRun } from '../../shared/infer.js';
import type { TaskAssignment } from '../../shared/protocol.js';
import type { RunOutcome, Runner } from '../net/work-loop.js';
import { Backend, type BackendChoice, type Trial } from './backend-choice.js';
import { type FromWorker, type InferenceSetup, type ToWorker, inputBuffers } from './inference-messages.js';
import type { InteractiveSessions } from './interactive-sessions.js';
import type { OrtRunner, TrialRequest } from './ort-runner.js';

export interface PageRunnerEvents {
  onChoice?: (modelHash: string, choice: BackendChoice) => void;
  onActivity?: (message: string | null) => void;
  onDeviceLost?: (message: string) => void;
  /** Something went wrong in the worker outside any task. */
  onProblem?: (message: string) => void;
}

/** What the page needs of its runner beyond running tasks. */
export interface PageRunner extends Runner {
  readonly deviceLost: string | null;
  /** The volunteer opted in: load the runtime now rather than when the first task's model has arrived. */
  warmUp(): void;
  loseDeviceForTest(): Promise<boolean>;
}

/** Hinted tasks remembered for their claim; the worker keeps as many. */
const PREFETCHED_MAX = 8;

type Waiting = { resolve: (v: never) => void; reject: (e: Error) => void };

export class WorkerRunner implements PageRunner {
  private readonly pending = new Map<number, Waiting>();
  private nextId = 1;
  /** Replica ids sent as prefetch hints and not yet run. */
  private readonly prefetched = new Set<string>();
  private lost: string | null = null;
  /** Set when the worker could not start: tasks then run here. */
  private local: Promise<OrtRunner> | null = null;
  private worker: Worker | null = null;
  /** Started with the first interactive request; null until then, or after it failed (the next request starts one). */
  private interactive: Worker | null = null;
  /** Requests (by id) the interactive worker holds: failed if it fails. */
  private readonly interactivePending = new Set<number>();
  /** Without any worker: interactive sessions on this thread, sharing the local runner's runtime. */
  private localInteractive: Promise<InteractiveSessions> | null = null;
  /** The backend the batch path settled on, per model: interactive requests use it (else WASM). */
  private readonly choices = new Map<string, Backend>();

  constructor(private readonly setup: InferenceSetup, private readonly events: PageRunnerEvents = {}) {
    try {
      this.worker = new Worker(new URL('./inference-worker.ts', import.meta.url), { type: 'module', name: 'tabgrid-inference' });
    } catch (err) {
      this.fallBack(`no inference worker (${err instanceof Error ? err.message : String(err)})`);
      return;
    }
    this.worker.addEventListener('message', (e: MessageEvent<FromWorker>) => this.onMessage(e.data));
    this.worker.addEventListener('error', (e) => {
      e.preventDefault();
      this.fallBack(`the inference worker failed (${e.message || 'it could not load'})`);
    });
    this.send({ type: 'init', setup });
  }

  get deviceLost(): string | null {
    return this.lost;
  }

  /** Sends the next task ahead: the worker starts it the moment the running one ends (see Runner.prefetch). */
  prefetch(task: TaskAssignment, modelUrl: string): void {
    if (this.local || !this.worker) return;
    if (this.prefetched.has(task.replicaId)) {
      this.send({ type: 'next', replicaId: task.replicaId }); // sent already: it may start early again
      return;
    }
    this.prefetched.add(task.replicaId);
    if (this.prefetched.size > PREFETCHED_MAX) this.prefetched.delete(this.prefetched.values().next().value!);
    this.send({ type: 'prefetch', task, modelUrl }, inputBuffers(task));
  }

  run(task: TaskAssignment, modelUrl: string): Promise<RunOutcome> {
    if (this.local) return this.local.then((r) => r.run(task, modelUrl));
    if (this.prefetched.delete(task.replicaId)) {
      // Its inputs went to the worker with the hint (and are detached here): claim it by id.
      return this.ask<RunOutcome>((id) => ({ type: 'claim', id, replicaId: task.replicaId }));
    }
    return this.ask<RunOutcome>((id) => ({ type: 'run', id, task, modelUrl }), inputBuffers(task));
  }

  /** Nothing starts early until the next hint (pause, a rest owed between tasks). */
  holdPrefetch(): void {
    this.send({ type: 'hold' });
  }

  warmUp(): void {
    if (this.local) void this.local.then((r) => r.warmUp());
    else this.send({ type: 'warm-up' });
  }

  warmInteractive(modelHash: string, modelUrl: string): Promise<{ backend: string; warmMs: number }> {
    const backend = this.interactiveBackend(modelHash);
    if (this.local) return this.sessionsHere().then((s) => s.warm(modelHash, modelUrl, backend));
    return this.askInteractive((id) => ({ type: 'infer-warm', id, modelHash, modelUrl, backend }));
  }

  runInteractive(req: InferRun): Promise<RunOutcome> {
    const backend = this.interactiveBackend(req.modelHash);
    if (this.local) return this.sessionsHere().then((s) => s.run(req, backend));
    return this.askInteractive((id) => ({ type: 'infer-run', id, req, backend }), inputBuffers(req));
  }

  coolInteractive(modelHash: string): void {
    if (this.local) void this.localInteractive?.then((s) => s.cool(modelHash));
    else this.interactive?.postMessage({ type: 'infer-cool', modelHash } satisfies ToWorker);
  }

  /** The batch path's backend for the model once settled (WASM while WebGPU is still being timed), else WASM. */
  private interactiveBackend(modelHash: string): Backend {
    return this.setup.forced ?? this.choices.get(modelHash) ?? Backend.wasm;
  }

  private askInteractive<T>(message: (id: number) => ToWorker, transfer: ArrayBuffer[] = []): Promise<T> {
    const worker = this.interactive ?? this.startInteractive();
    if (!worker) return Promise.reject(new Error('no interactive worker could be started'));
    const id = this.nextId++;
    this.interactivePending.add(id);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject });
      worker.postMessage(message(id), transfer);
    }).finally(() => this.interactivePending.delete(id));
  }

  private startInteractive(): Worker | null {
    let worker: Worker;
    try {
      worker = new Worker(new URL('./inference-worker.ts', import.meta.url), { type: 'module', name: 'tabgrid-interactive' });
    } catch (err) {
      this.events.onProblem?.(`no interactive worker (${err instanceof Error ? err.message : String(err)})`);
      return null;
    }
    worker.addEventListener('message', (e: MessageEvent<FromWorker>) => this.onMessage(e.data));
    worker.addEventListener('error', (e) => {
      e.preventDefault();
      worker.terminate();
      if (this.interactive === worker) this.interactive = null;
      const why = `the interactive worker failed (${e.message || 'it could not load'})`;
      for (const id of this.interactivePending) this.settle(id, (w) => w.reject(new Error(why)));
      this.events.onProblem?.(why);
    });
    worker.postMessage({ type: 'init', setup: this.setup } satisfies ToWorker);
    this.interactive = worker;
    return worker;
  }

  /** Interactive sessions on this thread (no worker could start), their runs queued with the local runner's. */
  private sessionsHere(): Promise<InteractiveSessions> {
    this.localInteractive ??= Promise.all([this.local!, import('./interactive-sessions.js')])
      .then(([runner, { InteractiveSessions }]) => new InteractiveSessions({ builds: runner.builds, exclusive: (fn) => runner.exclusive(fn) }));
    return this.localInteractive;
  }

  loseDeviceForTest(): Promise<boolean> {
    if (this.local) return this.local.then((r) => r.loseDeviceForTest());
    return this.ask<boolean>((id) => ({ type: 'lose-device', id }));
  }

  private ask<T>(message: (id: number) => ToWorker, transfer: ArrayBuffer[] = []): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject });
      this.send(message(id), transfer);
    });
  }

  private send(m: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker?.postMessage(m, transfer);
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'done': return this.settle(m.id, (w) => w.resolve(m.outcome as never));
      case 'failed': return this.settle(m.id, (w) => w.reject(new Error(m.message)));
      case 'device-destroyed': return this.settle(m.id, (w) => w.resolve(m.destroyed as never));
      case 'choice':
        this.choices.set(m.modelHash, m.choice.backend);
        return this.events.onChoice?.(m.modelHash, m.choice);
      case 'warmed': return this.settle(m.id, (w) => w.resolve({ backend: m.backend, warmMs: m.warmMs } as never));
      case 'activity': return this.events.onActivity?.(m.message);
      case 'device-lost':
        this.lost = m.message;
        return this.events.onDeviceLost?.(m.message);
      case 'problem': return this.events.onProblem?.(m.message);
      case 'need-trial':
        void timeInTrialWorker(this.setup, m.request).then((trials) => this.send({ type: 'trial-result', id: m.id, trials }));
        return;
      case 'timed': return; // only a trial worker says this, to its own listener
    }
  }

  private settle(id: number, fn: (w: Waiting) => void): void {
    const w = this.pending.get(id);
    if (!w) return;
    this.pending.delete(id);
    fn(w);
  }

  /** Runs onnxruntime on this thread from now on; what the worker held is failed so the loop reports it. */
  private fallBack(why: string): void {
    this.worker?.terminate();
    this.worker = null;
    for (const w of this.pending.values()) w.reject(new Error(why));
    this.pending.clear();
    this.events.onProblem?.(`${why}; running on the page's main thread instead`);
    this.local ??= import('./ort-runner.js').then(({ OrtRunner }) => new OrtRunner({
      ...this.setup,
      onChoice: (modelHash, choice) => { this.choices.set(modelHash, choice.backend); this.events.onChoice?.(modelHash, choice); },
      onActivity: this.events.onActivity,
      onDeviceLost: (message) => { this.lost = message; this.events.onDeviceLost?.(message); },
    }));
  }
}

/**
 * Times backends in a trial worker: another inference worker with a runtime of its own, so the timing (seconds
 * on a software adapter, where WebGPU's shaders compile slowly) runs beside the tasks instead of before them.
 * Never rejects: a worker that cannot start or fails is reported as a failed trial, and the model stays on WASM.
 */
function timeInTrialWorker(setup: InferenceSetup, request: TrialRequest): Promise<Trial[]> {
  return new Promise((resolve) => {
    let worker: Worker;
    const failed = (why: string) => resolve(request.backends.filter((b) => b !== Backend.wasm).map((backend) => ({ backend, error: why })));
    try {
      worker = new Worker(new URL('./inference-worker.ts', import.meta.url), { type: 'module', name: 'tabgrid-backend-trial' });
    } catch (err) {
      failed(`no trial worker (${err instanceof Error ? err.message : String(err)})`);
      return;
    }
    const end = (trials: Trial[]) => { worker.terminate(); resolve(trials); };
    worker.addEventListener('message', (e: MessageEvent<FromWorker>) => { if (e.data.type === 'timed') end(e.data.trials); });
    worker.addEventListener('error', (e) => {
      e.preventDefault();
      worker.terminate();
      failed(`the trial worker failed (${e.message || 'it could not load'})`);
    });
    const send = (m: ToWorker) => worker.postMessage(m);
    send({ type: 'init', setup: { ...setup, forced: undefined } });
    send({ type: 'time-backends', id: 1, request });
  });
}
