/**
 * The page's Runner: hands each task to the inference worker (inference-worker.ts) and waits for its
 * outputs, so session.run never holds the main thread and the socket's traffic flows while a task runs.
 * When that worker asks for the backends of a new model to be timed, a second instance of it (the trial
 * worker) does so with a runtime of its own, beside the tasks, and is ended after.
 * Where a worker cannot be started, the page runs onnxruntime itself (OrtRunner, loaded only then).
 */
import type { TaskAssignment } from '../../shared/protocol.js';
import type { RunOutcome, Runner } from '../net/work-loop.js';
import { Backend, type BackendChoice, type Trial } from './backend-choice.js';
import { type FromWorker, type InferenceSetup, type ToWorker, inputBuffers } from './inference-messages.js';
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
      case 'choice': return this.events.onChoice?.(m.modelHash, m.choice);
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
      onChoice: this.events.onChoice,
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
