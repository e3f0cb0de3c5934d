/**
 * The input tensors of a task: for stage 0, a slice of the job's data sets; for a later stage, the
 * verified outputs of the stage before it for the same batch (they chain by tensor name).
 */
import { AppError } from '../../shared/errors.js';
import type { WireTensor } from '../../shared/protocol.js';
import { unpackTensors } from '../../shared/tensor-pack.js';
import { type JobRow, type Store, type TaskRow, taskId } from '../store/store.js';
import type { DatasetService } from './datasets.js';

export class TaskInputs {
  constructor(private readonly deps: { store: Store; datasets: DatasetService }) {}

  of(job: JobRow, task: TaskRow): WireTensor[] {
    if (task.stage === 0) return this.deps.datasets.taskInputs(job, task);
    const { store } = this.deps;
    const prev = store.taskResult(taskId(job.id, task.stage - 1, task.batch));
    if (!prev) throw new AppError('INTERNAL', `stage ${task.stage - 1} of batch ${task.batch} has no verified output`);
    const wanted = store.getModel(task.model)!.inputs.map((s) => s.name);
    const byName = new Map(unpackTensors(prev).map((t) => [t.name, t]));
    return wanted.map((name) => {
      const t = byName.get(name);
      if (!t) throw new AppError('INTERNAL', `stage ${task.stage} needs ${name}, which stage ${task.stage - 1} does not give`);
      return { name, dtype: t.dtype, dims: t.dims, data: t.data };
    });
  }
}
