/**
 * The inference worker: runs tasks with an OrtRunner off the page's main thread (see inference-messages.ts).
 * Outputs go back as transferred buffers, not copies. A second instance, started by the page for a while, is
 * the trial worker: it times backends on a model with a runtime of its own while the first runs tasks.
 */
import type { TaskAssignment } from '../../shared/protocol.js';
import type { Tensor } from '../../shared/tensor.js';
import type { RunOutcome } from '../net/work-loop.js';
import { GPU_DEBRIS_WAIT_MS, rejectionText } from './gpu-debris.js';
import type { Trial } from './backend-choice.js';
import { type FromWorker, type ToWorker, ownedBuffer } from './inference-messages.js';
import { InteractiveSessions } from './interactive-sessions.js';
import { OrtRunner, type TrialRequest } from './ort-runner.js';

interface WorkerScope {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  addEventListener(type: 'message', fn: (e: MessageEvent<ToWorker>) => void): void;
  addEventListener(type: 'unhandledrejection', fn: (e: PromiseRejectionEvent) => void): void;
}
const scope = globalThis as unknown as WorkerScope;
let runner: OrtRunner | null = null;
/** In the interactive worker: its sessions, made with its first request (after 'init', which makes the runner). */
let interactive: InteractiveSessions | null = null;

function interactiveSessions(): InteractiveSessions {
  if (!runner) throw new Error('the inference worker was not set up');
  return (interactive ??= new InteractiveSessions({ builds: runner.builds }));
}

/** The outputs that own their buffer whole move to the page; a view into a larger one is copied, then moved. */
function movable(outputs: Tensor[]): { outputs: Tensor[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = [];
  const out = outputs.map((t) => {
    const owned = ownedBuffer(t.data);
    const data = owned && !transfer.includes(owned) ? t.data : t.data.slice();
    transfer.push(data.buffer as ArrayBuffer);
    return data === t.data ? t : { ...t, data };
  });
  return { outputs: out, transfer };
}

type Pending = { task: TaskAssignment; modelUrl: string };
/** Runs one task at a time, in the order asked. */
let tail: Promise<unknown> = Promise.resolve();
/** Tasks sent ahead (inputs here), not started, by replica id; the page may still claim any of them. */
const parked = new Map<string, Pending>();
const PARKED_MAX = 8;
/** The task to start as soon as the running one ends, while the page allows it. */
let nextUp: string | null = null;
let autoStart = false;
/** Started ahead of its claim (at most one), by replica id. */
const early = new Map<string, Promise<RunOutcome>>();
/** Trials asked of the page and not yet answered, by id. */
const trials = new Map<number, (trials: Trial[]) => void>();
let nextTrial = 1;

/** Has the page time backends in a trial worker, beside this worker's tasks. */
function askForTrial(request: TrialRequest): Promise<Trial[]> {
  const id = nextTrial++;
  return new Promise((resolve) => {
    trials.set(id, resolve);
    scope.postMessage({ type: 'need-trial', id, request });
  });
}

function start(p: Pending): Promise<RunOutcome> {
  const run = tail.then(() => {
    if (!runner) throw new Error('the inference worker was not set up');
    return runner.run(p.task, p.modelUrl);
  });
  tail = run.catch(() => {});
  return run;
}

/** Answers a run with its outcome (transferring its buffers). An interactive request's answer is this alone. */
async function answerNow(id: number, run: Promise<RunOutcome>): Promise<void> {
  try {
    const outcome = await run;
    const { outputs, transfer } = movable(outcome.outputs);
    scope.postMessage({ type: 'done', id, outcome: { ...outcome, outputs } }, transfer);
  } catch (err) {
    scope.postMessage({ type: 'failed', id, message: err instanceof Error ? err.message : String(err) });
  }
}

/** Answers a run with its outcome, then starts the next task at once, while the page handles this answer. */
async function answer(id: number, run: Promise<RunOutcome>): Promise<void> {
  await answerNow(id, run);
  const next = nextUp ? parked.get(nextUp) : undefined;
  if (next && autoStart && early.size === 0) {
    parked.delete(next.task.replicaId);
    const run = start(next);
    run.catch(() => {}); // a failure is answered to its claim; one never claimed is nobody's problem
    early.set(next.task.replicaId, run);
  }
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'infer-warm':
      try {
        const { backend, warmMs } = await interactiveSessions().warm(m.modelHash, m.modelUrl, m.backend);
        scope.postMessage({ type: 'warmed', id: m.id, backend, warmMs });
      } catch (err) {
        scope.postMessage({ type: 'failed', id: m.id, message: err instanceof Error ? err.message : String(err) });
      }
      return;
    case 'infer-run':
      return answerNow(m.id, Promise.resolve().then(() => interactiveSessions().run(m.req, m.backend)));
    case 'infer-cool':
      interactive?.cool(m.modelHash);
      return;
    case 'init':
      runner = new OrtRunner({
        ...m.setup,
        onChoice: (modelHash, choice) => scope.postMessage({ type: 'choice', modelHash, choice }),
        onActivity: (message) => scope.postMessage({ type: 'activity', message }),
        onDeviceLost: (message) => scope.postMessage({ type: 'device-lost', message }),
        timeBackends: askForTrial,
      });
      return;
    case 'warm-up':
      await runner?.warmUp();
      return;
    case 'time-backends':
      if (!runner) throw new Error('the inference worker was not set up');
      scope.postMessage({ type: 'timed', id: m.id, trials: await runner.timeBackends(m.request) });
      return;
    case 'trial-result':
      trials.get(m.id)?.(m.trials);
      trials.delete(m.id);
      return;
    case 'run':
      // A task run instead of the one started early: the page dropped that one (cancelled, released).
      early.clear();
      return answer(m.id, start(m));
    case 'prefetch':
      parked.set(m.task.replicaId, m);
      if (parked.size > PARKED_MAX) parked.delete(parked.keys().next().value!);
      nextUp = m.task.replicaId;
      autoStart = true;
      return;
    case 'next':
      nextUp = m.replicaId;
      autoStart = true;
      return;
    case 'hold':
      autoStart = false;
      return;
    case 'claim': {
      const ahead = parked.get(m.replicaId);
      const run = early.get(m.replicaId) ?? (ahead ? start(ahead) : null);
      early.clear();
      parked.delete(m.replicaId);
      if (!run) {
        scope.postMessage({ type: 'failed', id: m.id, message: `task ${m.replicaId} was not sent ahead to the inference worker` });
        return;
      }
      return answer(m.id, run);
    }
    case 'lose-device':
      scope.postMessage({ type: 'device-destroyed', id: m.id, destroyed: (await runner?.loseDeviceForTest()) ?? false });
  }
}

scope.addEventListener('message', (e) => { void handle(e.data); });

// Unhandled rejections are reported to the page as problems, but for a lost device's leftovers (gpu-debris.ts).
scope.addEventListener('unhandledrejection', (e) => {
  e.preventDefault();
  const { text, gpuDebris } = rejectionText(e.reason);
  const report = () => scope.postMessage({ type: 'problem', message: `inference worker: ${text}` });
  if (gpuDebris) setTimeout(() => { if (!runner?.deviceLost) report(); }, GPU_DEBRIS_WAIT_MS);
  else report();
});
