/**
 * Jobs: created from a model and data sets (checked against what the model declares), optionally split
 * into pipeline stages, cut into batch tasks per stage, watched through their counts, cancelled, deleted, and
 * assembled into one .npy per output at the end.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../../shared/errors.js';
import { npyHeader } from '../../shared/npy.js';
import type { CreateJob, JobView } from '../../shared/protocol.js';
import type { DeletedJob, JobDiskView, JobFileView } from '../../shared/rest-types.js';
import { unpackTensors } from '../../shared/tensor-pack.js';
import { type Tensor, elementCount, itemSize } from '../../shared/tensor.js';
import type { ModelService } from '../onnx/model-service.js';
import type { Clock } from '../scheduler/clock.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { BlobStore } from '../store/blob-store.js';
import { type JobRow, type Store, type TaskRow, createJobThen, taskId } from '../store/store.js';
import { totalCounts, viewCountsOf } from '../store/view-counts.js';
import type { ServerRuns } from '../verify/server-runs.js';
import type { DatasetService } from './datasets.js';
import { resolveInputs } from './job-inputs.js';
import { Retention, type RetentionSettings } from './retention.js';

/** What jobs need of the scheduler. */
export type JobScheduler = Pick<Scheduler, 'jobCreated' | 'cancelJob' | 'rerunTainted'>;

/** Caps on one job (TABGRID_MAX_JOB_ITEMS, TABGRID_MAX_JOB_TASKS): a few header bytes must not make a million tasks. */
export interface JobLimits { maxItems: number; maxTasks: number }

export interface JobServiceDeps {
  store: Store;
  clock: Clock;
  scheduler: JobScheduler;
  /** The server's own runs: it computes the canary tasks' known answers. */
  canaries: Pick<ServerRuns, 'compute'>;
  models: ModelService;
  datasets: DatasetService;
}

/**
 * Creations of one key's jobs under way at once. Each holds its tasks in memory until its commit lands (on an engine
 * that commits on a connection of its own, creating no longer holds up the server, so nothing else would queue them).
 */
export const MAX_CREATIONS_PER_KEY = 2;

export class JobService {
  /** Creations under way, by owner. */
  private readonly creating = new Map<string, number>();

  constructor(private readonly deps: JobServiceDeps) {}

  async create(owner: string, req: CreateJob & { keepReplicaOutputs?: boolean }, limits: JobLimits): Promise<JobRow> {
    const under = this.creating.get(owner) ?? 0;
    if (under >= MAX_CREATIONS_PER_KEY) {
      throw new AppError('RATE_LIMITED', `${under} jobs of this API key are still being created; submit the next once one of them is`);
    }
    this.creating.set(owner, under + 1);
    try {
      return await this.createNow(owner, req, limits);
    } finally {
      const left = (this.creating.get(owner) ?? 1) - 1;
      if (left > 0) this.creating.set(owner, left);
      else this.creating.delete(owner);
    }
  }

  private async createNow(owner: string, req: CreateJob & { keepReplicaOutputs?: boolean }, limits: JobLimits): Promise<JobRow> {
    const { store, clock } = this.deps;
    const model = store.getModel(req.model);
    if (!model) throw new AppError('NOT_FOUND', `model ${req.model} not found; upload it first`);
    const { inputs, items, batchSize } = resolveInputs(store, model, req.inputs, req.batchSize);
    const count = Math.ceil(items / batchSize);
    // Checked before any split: partitioning is the expensive part, and the stage count is known already.
    checkPlan(items, count * (req.cuts ? req.cuts.length + 1 : req.stages), limits);
    const id = `job-${randomBytes(6).toString('hex')}`;
    let stageModels = [model.hash];
    if (req.stages > 1 || req.cuts) {
      const sample = this.deps.datasets.taskInputs({ inputs } as JobRow, firstBatch(id, batchSize, items)) as Tensor[];
      stageModels = await this.deps.models.split(model.hash, req.cuts ? { cuts: req.cuts } : { stages: req.stages }, sample, req);
    }
    const canaries = pickCanaries(count, req.canaryRate);
    const job: JobRow = {
      id, owner, name: req.name ?? null, model: model.hash, stageModels, inputs, items, batchSize,
      replicas: req.replicas, maxReplicas: Math.max(req.maxReplicas ?? req.replicas + 3, req.replicas),
      rtol: req.rtol, atol: req.atol, priority: req.priority, adaptive: req.adaptive,
      // A job too small for a canary has none, and then needs no vetted volunteer in its quorums.
      canaryRate: canaries.size > 0 ? req.canaryRate : 0,
      status: 'running', error: null, createdAt: clock.now(), finishedAt: null, keepReplicaOutputs: req.keepReplicaOutputs ?? false,
    };
    checkPlan(items, count * stageModels.length, limits);
    const tasks: TaskRow[] = [];
    for (let stage = 0; stage < stageModels.length; stage++) {
      for (let batch = 0; batch < count; batch++) {
        // Canaries are stage-0 tasks: the server can answer those from the data alone.
        const canary = stage === 0 && canaries.has(batch);
        const ready = stage === 0 && !canary;
        tasks.push({
          id: taskId(id, stage, batch), jobId: id, stage, model: stageModels[stage], batch,
          itemStart: batch * batchSize, itemEnd: Math.min(items, (batch + 1) * batchSize), status: 'pending', canary,
          ready, readyAt: ready ? job.createdAt : null, wanted: req.replicas, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
        });
      }
    }
    await createJobThen(store, job, tasks);
    this.deps.canaries.compute(tasks.filter((t) => t.canary));
    this.deps.scheduler.jobCreated(job);
    return job;
  }

  /** The job, if it exists and `owner` may see it (admin keys see every job). */
  get(id: string, owner: string, admin: boolean): JobRow {
    const job = this.deps.store.getJob(id);
    if (!job || (!admin && job.owner !== owner)) throw new AppError('NOT_FOUND', `job ${id} not found`);
    return job;
  }

  list(owner: string, admin: boolean): JobRow[] {
    return this.deps.store.listJobs(admin ? undefined : owner);
  }

  cancel(job: JobRow): JobRow {
    if (job.status !== 'running') throw new AppError('CONFLICT', `job ${job.id} is ${job.status}, not running`);
    this.deps.scheduler.cancelJob(job.id);
    return this.deps.store.getJob(job.id)!;
  }

  /**
   * Deletes a job with its tasks, replicas, their outputs and its results. A running job is cancelled first, through
   * the scheduler, so the workers holding its leases are told to stop. Its models and data sets stay until no job
   * has used them for the retention's grace period.
   */
  delete(job: JobRow): DeletedJob {
    const { store, scheduler } = this.deps;
    const held = store.jobBytes(job.id);
    if (job.status === 'running') scheduler.cancelJob(job.id);
    const status = store.getJob(job.id)?.status ?? job.status;
    store.deleteJob(job.id);
    store.compact();
    return { id: job.id, status, bytes: held.outputs + held.results };
  }

  /** The disk a job holds: its outputs and results, and its models and data sets (shared or its own). */
  disk(job: JobRow): JobDiskView {
    const { store } = this.deps;
    const bytes = store.jobBytes(job.id);
    const models = [...new Set([job.model, ...job.stageModels])];
    const datasets = [...new Set(job.inputs.map((i) => i.dataset))];
    const users = store.blobUsers([...models, ...datasets]);
    const shared = (hash: string) => (users.get(hash) ?? 0) > 1;
    const files: JobFileView[] = [
      ...models.map((hash): JobFileView => ({ kind: 'model', hash, size: store.getModel(hash)?.size ?? 0, shared: shared(hash) })),
      ...datasets.map((hash): JobFileView => {
        const d = store.getDataset(hash);
        return { kind: 'dataset', hash, size: d ? d.dataOffset + d.size : 0, shared: shared(hash) };
      }),
    ];
    const own = bytes.outputs + bytes.results + files.reduce((n, f) => n + (f.shared ? 0 : f.size), 0);
    return { jobId: job.id, ...bytes, keepReplicaOutputs: job.keepReplicaOutputs ?? false, files, own };
  }

  /** The retention sweeper over this service's store and clock; the app starts and stops it with the server. */
  retention(deps: { blobs: BlobStore; log: Logger; settings: RetentionSettings }): Retention {
    return new Retention({ store: this.deps.store, clock: this.deps.clock, ...deps });
  }

  /** Reopens the tasks of `job` that a since-quarantined volunteer helped accept; returns how many. */
  rerunTainted(job: JobRow): number {
    return this.deps.scheduler.rerunTainted(job.id);
  }

  view(job: JobRow): JobView {
    const { store } = this.deps;
    const model = store.getModel(job.model);
    // Where each count is a scan of the job (a shared database), the store reads them all at once, at a pace it can bear.
    const counts = store.viewCounts?.(job.id, job.status !== 'running') ?? viewCountsOf(store, job.id);
    return {
      id: job.id, name: job.name, status: job.status, model: job.model, items: job.items, batchSize: job.batchSize,
      replicas: job.replicas, maxReplicas: job.maxReplicas, rtol: job.rtol, atol: job.atol, priority: job.priority,
      adaptive: job.adaptive, canaryRate: job.canaryRate, createdAt: job.createdAt, finishedAt: job.finishedAt, error: job.error,
      tasks: { ...totalCounts(counts.stages), canaries: counts.canaries },
      stages: counts.stages.map((c) => ({ ...c, model: job.stageModels[c.stage] })),
      replicasIssued: counts.replicas,
      tainted: counts.tainted,
      outputs: model?.outputs ?? [],
      failures: store.failedTasks(job.id).map((t) => ({ taskId: t.id, stage: t.stage, batch: t.batch, reason: t.error ?? 'unknown' })),
    };
  }

  /**
   * One output of a completed job as a .npy file (first axis = items, in input order), as a size and a
   * sequence of chunks read one task at a time: the header, then each task's rows.
   */
  resultParts(job: JobRow, output: string): { size: number; chunks(): Iterable<Uint8Array> } {
    if (job.status !== 'completed') throw new AppError('CONFLICT', `job ${job.id} is ${job.status}; results are ready when it is completed`);
    const { store } = this.deps;
    const stage = job.stageModels.length - 1;
    const pick = (result: Uint8Array): Tensor => {
      const t = unpackTensors(result).find((x) => x.name === output);
      if (!t) throw new AppError('NOT_FOUND', `job ${job.id} has no output named ${output}`);
      return t;
    };
    // A first pass learns the shape without keeping any data.
    let rows = 0;
    let first: Tensor | null = null;
    for (const { result } of store.taskResults(job.id, stage)) {
      const t = pick(result);
      if (first && (t.dtype !== first.dtype || t.dims.slice(1).join() !== first.dims.slice(1).join())) {
        throw new AppError('CONFLICT', `output ${output} differs in shape between batches: ${first.dtype}[${first.dims}] and ${t.dtype}[${t.dims}]`);
      }
      first ??= t;
      rows += t.dims[0] ?? 1;
    }
    if (!first) throw new AppError('NOT_FOUND', `job ${job.id} has no output named ${output}`);
    const dims = [rows, ...first.dims.slice(1)];
    const header = npyHeader(first.dtype, dims);
    return {
      size: header.byteLength + elementCount(dims) * itemSize(first.dtype),
      *chunks() {
        yield header;
        for (const { result } of store.taskResults(job.id, stage)) yield pick(result).data;
      },
    };
  }
}

/** Refuses a job with no tasks, or more items or tasks than the caps allow, naming the cap and its setting. */
function checkPlan(items: number, tasks: number, limits: JobLimits): void {
  if (items > limits.maxItems) {
    throw new AppError('INVALID_PAYLOAD', `the job has ${items} items; a job may have at most ${limits.maxItems} (TABGRID_MAX_JOB_ITEMS)`);
  }
  if (tasks > limits.maxTasks) {
    throw new AppError('INVALID_PAYLOAD', `the job would make ${tasks} tasks; a job may make at most ${limits.maxTasks} (TABGRID_MAX_JOB_TASKS); a larger batch size makes fewer`);
  }
  if (!(tasks >= 1)) throw new AppError('INVALID_PAYLOAD', 'the job would make no tasks');
}

/** The first items of a job (at most two): the sample a split model is checked on. */
function firstBatch(jobId: string, batchSize: number, items: number): TaskRow {
  return {
    id: taskId(jobId, 0, 0), jobId, stage: 0, model: '', batch: 0, itemStart: 0, itemEnd: Math.min(items, batchSize, 2),
    status: 'pending', canary: false, ready: true, readyAt: 0, wanted: 1, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
  };
}

/** Which batches become known-answer tasks: about `rate` of them, at least one when there are two or more. */
function pickCanaries(count: number, rate: number): Set<number> {
  const picked = new Set<number>();
  if (rate <= 0 || count < 2) return picked;
  const want = Math.min(count - 1, Math.max(1, Math.round(count * rate)));
  while (picked.size < want) picked.add(randomInt(count));
  return picked;
}
