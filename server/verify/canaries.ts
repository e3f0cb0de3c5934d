/**
 * Known-answer tasks: the server computes a canary task's outputs itself with onnxruntime-node, in the
 * background, one at a time, so volunteers can be tested against an answer no volunteer supplied.
 */
import * as ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import type { DType, Tensor } from '../../shared/tensor.js';
import type { WireTensor } from '../../shared/protocol.js';
import { fromOrtTensor, toOrtTensor } from '../onnx/ort-tensors.js';
import type { BlobStore } from '../store/blob-store.js';
import type { JobRow, Store, TaskRow } from '../store/store.js';
import type { Scheduler } from '../scheduler/scheduler.js';

export interface CanaryDeps {
  store: Store;
  blobs: BlobStore;
  log: Logger;
  scheduler: Scheduler;
  taskInputs(job: JobRow, task: TaskRow): WireTensor[];
}

export class CanaryService {
  private queue: TaskRow[] = [];
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly deps: CanaryDeps) {}

  /** Queues canary tasks for computation; returns at once. */
  compute(tasks: TaskRow[]): void {
    if (tasks.length === 0 || this.stopped) return;
    this.queue.push(...tasks);
    this.running ??= this.drain().finally(() => { this.running = null; });
  }

  /** Picks up canaries left unanswered by a restart. */
  resume(): void {
    this.compute(this.deps.store.unreadyCanaries());
  }

  /** Resolves when every queued canary has been answered (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopped = true;
    this.queue = [];
  }

  private async drain(): Promise<void> {
    const sessions = new Map<string, ort.InferenceSession>();
    try {
      let task: TaskRow | undefined;
      while (!this.stopped && (task = this.queue.shift())) {
        const job = this.deps.store.getJob(task.jobId);
        if (!job || job.status !== 'running') continue;
        let outputs: Tensor[] | null = null;
        try {
          let session = sessions.get(task.model);
          if (!session) {
            session = await ort.InferenceSession.create(this.deps.blobs.read(task.model));
            sessions.set(task.model, session);
          }
          const feeds: Record<string, ort.Tensor> = {};
          for (const t of this.deps.taskInputs(job, task)) feeds[t.name] = toOrtTensor(t.dtype as DType, t.dims, t.data);
          const out = await session.run(feeds);
          outputs = session.outputNames.map((n) => fromOrtTensor(n, out[n]));
        } catch (err) {
          this.deps.log.warn({ err, taskId: task.id }, 'could not compute a canary answer; volunteers will compute the task');
        }
        if (!this.stopped) this.deps.scheduler.canaryReady(task.id, outputs);
      }
    } finally {
      for (const s of sessions.values()) await s.release().catch(() => {});
    }
  }
}
