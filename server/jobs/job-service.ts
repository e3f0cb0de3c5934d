/**
 * Jobs: created from a model and data sets (checked against what the model declares), cut into batch
 * tasks, watched through their counts, cancelled, and assembled into one .npy per output at the end.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { AppError } from '../../shared/errors.js';
import { writeNpy } from '../../shared/npy.js';
import type { CreateJob, JobView, TensorSpec } from '../../shared/protocol.js';
import { unpackTensors } from '../../shared/tensor-pack.js';
import { type DType, type Tensor, concatFirstAxis } from '../../shared/tensor.js';
import type { Clock } from '../scheduler/clock.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { JobInput, JobRow, Store, TaskRow } from '../store/store.js';
import type { CanaryService } from '../verify/canaries.js';

const fmt = (shape: readonly (number | string)[]) => `[${shape.join(', ')}]`;

export class JobService {
  constructor(private readonly deps: { store: Store; clock: Clock; scheduler: Scheduler; canaries: CanaryService }) {}

  create(owner: string, req: CreateJob): JobRow {
    const { store, clock } = this.deps;
    const model = store.getModel(req.model);
    if (!model) throw new AppError('NOT_FOUND', `model ${req.model} not found; upload it first`);
    const names = model.inputs.map((s) => s.name);
    for (const given of Object.keys(req.inputs)) {
      if (!names.includes(given)) throw new AppError('SHAPE_MISMATCH', `the model has no input named ${given}; its inputs are: ${names.join(', ')}`);
    }
    let items = -1;
    let batchSize = req.batchSize;
    const inputs: JobInput[] = model.inputs.map((spec) => {
      const hash = req.inputs[spec.name];
      if (!hash) throw new AppError('SHAPE_MISMATCH', `no data for model input ${spec.name}; the model's inputs are: ${names.join(', ')}`);
      const ds = store.getDataset(hash);
      if (!ds) throw new AppError('NOT_FOUND', `data set ${hash} not found; upload it first`);
      checkInput(spec, ds.dtype, ds.shape);
      if (items >= 0 && ds.shape[0] !== items) {
        throw new AppError('SHAPE_MISMATCH', `input ${spec.name} has ${ds.shape[0]} items, another input has ${items}: all inputs need the same item count`);
      }
      items = ds.shape[0];
      const fixed = spec.shape[0];
      if (typeof fixed === 'number') batchSize = fixed;
      return { name: spec.name, dataset: hash, dtype: ds.dtype, shape: ds.shape, dataOffset: ds.dataOffset };
    });
    if (items <= 0) throw new AppError('INVALID_PAYLOAD', 'the data set has no items');
    if (items % batchSize !== 0 && model.inputs.some((s) => typeof s.shape[0] === 'number')) {
      throw new AppError('SHAPE_MISMATCH', `the model takes exactly ${batchSize} items per run (first axis fixed), and ${items} items do not divide into such batches`);
    }
    const id = `job-${randomBytes(6).toString('hex')}`;
    const count = Math.ceil(items / batchSize);
    const canaries = pickCanaries(count, req.canaryRate);
    const now = clock.now();
    const job: JobRow = {
      id, owner, name: req.name ?? null, model: model.hash, inputs, items, batchSize,
      replicas: req.replicas, maxReplicas: Math.max(req.maxReplicas ?? req.replicas + 3, req.replicas),
      rtol: req.rtol, atol: req.atol, priority: req.priority, adaptive: req.adaptive,
      // A job too small for a canary has none, and then needs no vetted volunteer in its quorums.
      canaryRate: canaries.size > 0 ? req.canaryRate : 0,
      status: 'running', error: null, createdAt: now, finishedAt: null,
    };

    const tasks: TaskRow[] = [];
    for (let batch = 0; batch < count; batch++) {
      const start = batch * batchSize;
      const canary = canaries.has(batch);
      tasks.push({
        id: `${id}-t${batch}`, jobId: id, batch, itemStart: start, itemEnd: Math.min(items, start + batchSize),
        status: 'pending', canary, ready: !canary, wanted: req.replicas, active: 0, failures: 0, error: null, doneAt: null,
      });
    }
    store.createJob(job, tasks);
    this.deps.canaries.compute(tasks.filter((t) => t.canary));
    this.deps.scheduler.dispatch();
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

  view(job: JobRow): JobView {
    const { store } = this.deps;
    const model = store.getModel(job.model);
    return {
      id: job.id, name: job.name, status: job.status, model: job.model, items: job.items, batchSize: job.batchSize,
      replicas: job.replicas, maxReplicas: job.maxReplicas, rtol: job.rtol, atol: job.atol, priority: job.priority,
      adaptive: job.adaptive, canaryRate: job.canaryRate,
      createdAt: job.createdAt, finishedAt: job.finishedAt, error: job.error,
      tasks: { ...store.taskCounts(job.id), canaries: store.canaryCount(job.id) },
      replicasIssued: store.replicaCount(job.id),
      outputs: model?.outputs ?? [],
      failures: store.failedTasks(job.id).map((t) => ({ taskId: t.id, batch: t.batch, reason: t.error ?? 'unknown' })),
    };
  }

  /** One output of a completed job as a .npy file: first axis = items, in input order. */
  resultNpy(job: JobRow, output: string): Uint8Array {
    if (job.status !== 'completed') throw new AppError('CONFLICT', `job ${job.id} is ${job.status}; results are ready when it is completed`);
    const parts: Tensor[] = [];
    for (const { result } of this.deps.store.taskResults(job.id)) {
      const t = unpackTensors(result).find((x) => x.name === output);
      if (!t) throw new AppError('NOT_FOUND', `job ${job.id} has no output named ${output}`);
      parts.push(t);
    }
    const all = concatFirstAxis(parts);
    return writeNpy(all.dtype, all.dims, all.data);
  }
}

/** Which batches become known-answer tasks: about `rate` of them, at least one when there are two or more. */
function pickCanaries(count: number, rate: number): Set<number> {
  const picked = new Set<number>();
  if (rate <= 0 || count < 2) return picked;
  const want = Math.min(count - 1, Math.max(1, Math.round(count * rate)));
  while (picked.size < want) picked.add(randomInt(count));
  return picked;
}

/** Refuses data whose dtype or per-item shape does not fit a model input, naming both shapes. */
function checkInput(spec: TensorSpec, dtype: DType, shape: number[]): void {
  if (dtype !== spec.dtype) throw new AppError('SHAPE_MISMATCH', `input ${spec.name}: the data is ${dtype}, the model takes ${spec.dtype}`);
  const fits = spec.shape.length === shape.length && spec.shape.every((d, i) => i === 0 || typeof d !== 'number' || d === shape[i]);
  if (!fits) {
    throw new AppError('SHAPE_MISMATCH', `input ${spec.name}: the data has shape ${fmt(shape)} (first axis = items), the model takes ${fmt(spec.shape)}`);
  }
}
