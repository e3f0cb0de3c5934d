/**
 * What the page and its inference worker say to each other, and which buffers move between them. The worker hosts the OrtRunner (sessions,
 * backend choice, the WebGPU device), so onnxruntime's kernels never hold the page's main thread: the socket
 * keeps sending results and taking tasks while a task runs.
 */
import type { InferRun } from '../../shared/infer.js';
import type { TaskAssignment } from '../../shared/protocol.js';
import type { RunOutcome } from '../net/work-loop.js';
import type { Backend, BackendChoice, Trial } from './backend-choice.js';
import type { TrialRequest } from './ort-runner.js';

export interface InferenceSetup {
  available: Backend[];
  forced?: Backend;
  gpuLabel?: string;
  wasmPaths: string;
}

export type ToWorker =
  | { type: 'init'; setup: InferenceSetup }
  | { type: 'run'; id: number; task: TaskAssignment; modelUrl: string }
  /** The task that comes next: started as soon as the running one ends, its outputs kept for its `claim`. */
  | { type: 'prefetch'; task: TaskAssignment; modelUrl: string }
  /** A task sent ahead earlier is next again and may start early. */
  | { type: 'next'; replicaId: string }
  /** Start nothing early until the next prefetch (the page paused, or rests between tasks). */
  | { type: 'hold' }
  /** Run a task sent earlier as a prefetch (its inputs are already in the worker). */
  | { type: 'claim'; id: number; replicaId: string }
  | { type: 'lose-device'; id: number }
  /** The volunteer opted in: load the WebAssembly runtime now, before the first task. */
  | { type: 'warm-up' }
  /** To a trial worker: time these backends on this model (see TimeBackends). */
  | { type: 'time-backends'; id: number; request: TrialRequest }
  /** To the task worker: how the trial it asked for went. */
  | { type: 'trial-result'; id: number; trials: Trial[] }
  /** To the interactive worker (interactive-sessions.ts): load a model's session, run one request, let one go. */
  | { type: 'infer-warm'; id: number; modelHash: string; modelUrl: string; backend: Backend }
  | { type: 'infer-run'; id: number; req: InferRun; backend: Backend }
  | { type: 'infer-cool'; modelHash: string };

/** The ArrayBuffer that `d` is all of (so moving it to the other thread moves nothing else), or null. */
export function ownedBuffer(d: unknown): ArrayBuffer | null {
  if (d instanceof ArrayBuffer) return d;
  if (ArrayBuffer.isView(d) && d.buffer instanceof ArrayBuffer && d.byteOffset === 0 && d.byteLength === d.buffer.byteLength) return d.buffer;
  return null;
}

/** The buffers of a task's (or a request's) inputs that can move to the worker (the page has no use for them after). */
export function inputBuffers(task: Pick<TaskAssignment, 'inputs'>): ArrayBuffer[] {
  return [...new Set(task.inputs.map((t) => ownedBuffer(t.data)).filter((b): b is ArrayBuffer => b !== null))];
}

export type FromWorker =
  | { type: 'done'; id: number; outcome: RunOutcome }
  | { type: 'failed'; id: number; message: string }
  | { type: 'device-destroyed'; id: number; destroyed: boolean }
  | { type: 'choice'; modelHash: string; choice: BackendChoice }
  | { type: 'activity'; message: string | null }
  | { type: 'device-lost'; message: string }
  | { type: 'problem'; message: string }
  /** The task worker asks the page for a trial worker to time backends beside its tasks. */
  | { type: 'need-trial'; id: number; request: TrialRequest }
  /** A trial worker's answer to `time-backends`. */
  | { type: 'timed'; id: number; trials: Trial[] }
  /** The interactive worker's answer to `infer-warm`. */
  | { type: 'warmed'; id: number; backend: Backend; warmMs: number };
