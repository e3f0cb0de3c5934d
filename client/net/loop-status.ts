/**
 * What a WorkLoop reports about itself: its state, counts, and the per-task timing the overhead benchmark reads.
 */

export type LoopState = 'idle' | 'connecting' | 'waiting' | 'working' | 'resting' | 'paused' | 'stopped' | 'error';

/** How long one task took, for the worker-overhead benchmark. */
export interface TaskTiming {
  replicaId: string;
  jobId: string;
  /** From taking the task up (off the queue) until the server acknowledged its result. */
  wallMs: number;
  /** session.run alone, as the runner measured it. */
  runMs: number;
  /**
   * From the previous task's acknowledgement (or the end of the throttle's rest after it) until this one was
   * taken up; null for the first task after a start or a pause.
   */
  idleMs: number | null;
}

export interface LoopTiming {
  last: TaskTiming | null;
  /** Tasks whose result was acknowledged; the sums below are over them. */
  tasks: number;
  wallMs: number;
  runMs: number;
  idleMs: number;
  /** Time inside Runner.run for every task tried (model download and failures included): what the throttle meters. */
  busyMs: number;
  /** Time spent resting to honour the throttle. */
  restMs: number;
}

export interface LoopStatus {
  state: LoopState;
  connected: boolean;
  volunteerId: string | null;
  tasksDone: number;
  tasksFailed: number;
  computeMs: number;
  currentJob: string | null;
  backend: string | null;
  lastError: string | null;
  /** Percent of device time this worker may use (100 = no rest). */
  throttle: number;
  paused: boolean;
  /** Leases handed back early (pause, stop, a lost GPU) rather than left to lapse. */
  released: number;
  timing: LoopTiming;
  /** Interactive requests answered with outputs, and those whose run failed (client/net/interactive-lane.ts). */
  interactiveServed: number;
  interactiveFailed: number;
  /** Models whose interactive session is warm, by hash. */
  interactiveWarm: string[];
}

export const EMPTY_TIMING: LoopTiming = { last: null, tasks: 0, wallMs: 0, runMs: 0, idleMs: 0, busyMs: 0, restMs: 0 };

/** The status after one more acknowledged result: counts, compute time, backend and the timing totals. */
export function countResult(s: LoopStatus, last: TaskTiming, backend: string): Partial<LoopStatus> {
  const t = s.timing;
  return {
    tasksDone: s.tasksDone + 1,
    computeMs: s.computeMs + last.runMs,
    backend,
    timing: { ...t, last, tasks: t.tasks + 1, wallMs: t.wallMs + last.wallMs, runMs: t.runMs + last.runMs, idleMs: t.idleMs + (last.idleMs ?? 0) },
  };
}

/** Timing totals with more busy or rest time added. */
export function addTimes(t: LoopTiming, patch: Partial<Pick<LoopTiming, 'busyMs' | 'restMs'>>): LoopTiming {
  return { ...t, busyMs: t.busyMs + (patch.busyMs ?? 0), restMs: t.restMs + (patch.restMs ?? 0) };
}
