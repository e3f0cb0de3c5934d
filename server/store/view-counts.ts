/**
 * A job's counts as its view shows them (server/jobs/job-service.ts): tasks by stage and in all, known-answer and
 * tainted tasks, replicas issued.
 */
import type { StageCounts, Store, TaskCounts, ViewCounts } from './store.js';

/** The counts of all of a job's stages together. */
export function totalCounts(stages: readonly StageCounts[]): TaskCounts {
  const c: TaskCounts = { total: 0, done: 0, failed: 0, pending: 0, running: 0 };
  for (const s of stages) for (const k of ['total', 'done', 'failed', 'pending', 'running'] as const) c[k] += s[k];
  return c;
}

/** A view's counts asked one by one, of a store where each is cheap (memory, or an embedded database). */
export function viewCountsOf(store: Pick<Store, 'stageCounts' | 'canaryCount' | 'taintedCount' | 'replicaCount'>, jobId: string): ViewCounts {
  return { stages: store.stageCounts(jobId), canaries: store.canaryCount(jobId), tainted: store.taintedCount(jobId), replicas: store.replicaCount(jobId) };
}
