/**
 * What a WorkLoop is given: the Runner that runs a task's model (onnxruntime-web in the page, onnxruntime-node in
 * the headless worker) and the options it starts with.
 */
import type { InferRun } from '../../shared/infer.js';
import type { TaskAssignment, WorkerHello } from '../../shared/protocol.js';
import type { Tensor } from '../../shared/tensor.js';
import type { LoopStatus } from './loop-status.js';
import type { LoopTimers } from './loop-timers.js';
import type { WorkerSocket } from './open-worker-socket.js';

export interface RunOutcome { outputs: Tensor[]; runMs: number; backend: string }

/** Runs one task's model on its inputs. The page uses onnxruntime-web, the headless worker onnxruntime-node. */
export interface Runner {
  run(task: TaskAssignment, modelUrl: string): Promise<RunOutcome>;
  /**
   * A hint, given while a task runs: this one is next. A runner may start it as soon as the running one ends,
   * before `run` is called for it (saving a hand-off); what it computed is used only if `run` is called.
   */
  prefetch?(task: TaskAssignment, modelUrl: string): void;
  /** Start nothing early until the next hint: the loop pauses or will rest between tasks. */
  holdPrefetch?(): void;
  /**
   * Interactive requests (a runner without these serves none). Their sessions are kept apart from batch ones,
   * and a request runs as soon as it comes, ahead of queued batch tasks.
   */
  warmInteractive?(modelHash: string, modelUrl: string): Promise<{ backend: string; warmMs: number }>;
  runInteractive?(req: InferRun): Promise<RunOutcome>;
  coolInteractive?(modelHash: string): void;
}

export interface WorkLoopOptions {
  /** The server to work for first. */
  serverUrl: string;
  /**
   * Servers to move to, in turn, when the current one cannot be reached (connection-watch.ts); those the servers
   * name in their hello's ack are added after them. The volunteer token goes along.
   */
  servers?: string[];
  /** Called on giving up server `from` for `to`. */
  onSwitch?: (from: string, to: string) => void;
  hello: Omit<WorkerHello, 'token'>;
  /** Read afresh at every (re)connect: what may have changed since, such as the shards held in cache. */
  helloExtras?: () => Promise<Partial<Omit<WorkerHello, 'token'>>>;
  token?: string;
  /** Tasks to hold at once: one running, the rest waiting (default: as many as keep it busy while results are acknowledged, 2 to 8; slot-sizer.ts). */
  slots?: number;
  /** Percent of device time to use, 5 to 100 (default 100). */
  throttle?: number;
  runner: Runner;
  onStatus?: (s: LoopStatus) => void;
  /** Called when the server issues or confirms the volunteer token, so the caller can keep it. */
  onToken?: (token: string) => void;
  timers?: LoopTimers;
  /** The local address to connect from (Node only; see open-worker-socket.ts). */
  bind?: string;
  /** Replaceable for tests; defaults to openWorkerSocket. */
  connect?: (url: string) => WorkerSocket;
}
