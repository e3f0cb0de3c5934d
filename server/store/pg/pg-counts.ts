/**
 * A job's counts on PostgreSQL, for the job's view (server/jobs/job-service.ts): tasks by stage and status, known-answer
 * tasks and tainted ones. Memory holds only the slices a server took, so these come from the database, and each is a
 * scan of the job's tasks; one view asks all of them in a row. They are read with one scan and kept for the rest of
 * that turn of the event loop, until the next write (`forget`).
 */
import type { StageCounts, TaskCounts } from '../store.js';
import type { Statement } from './pg-sync.js';

type Send = (statements: Statement[]) => Record<string, unknown>[][];

interface Counts { jobId: string; stages: StageCounts[]; canaries: number; tainted: number }

interface CountRow { stage: number; status: string; n: number; busy: number; canaries: number; tainted: number }

const COUNTS = `SELECT stage, status, COUNT(*) AS n, COUNT(*) FILTER (WHERE active > 0) AS busy,
  COUNT(*) FILTER (WHERE canary) AS canaries, COUNT(*) FILTER (WHERE tainted) AS tainted
  FROM tasks WHERE job_id = $1 GROUP BY stage, status ORDER BY stage`;

export class PgJobCounts {
  private kept: Counts | null = null;
  private clearing = false;

  constructor(private readonly send: Send) {}

  /** What was read no longer holds (a write went out or is queued). */
  forget(): void {
    this.kept = null;
  }

  stageCounts(jobId: string): StageCounts[] {
    return this.of(jobId).stages.map((s) => ({ ...s }));
  }

  taskCounts(jobId: string): TaskCounts {
    const c: TaskCounts = { total: 0, done: 0, failed: 0, pending: 0, running: 0 };
    for (const s of this.of(jobId).stages) for (const k of ['total', 'done', 'failed', 'pending', 'running'] as const) c[k] += s[k];
    return c;
  }

  canaryCount(jobId: string): number {
    return this.of(jobId).canaries;
  }

  taintedCount(jobId: string): number {
    return this.of(jobId).tainted;
  }

  private of(jobId: string): Counts {
    if (this.kept?.jobId === jobId) return this.kept;
    const rows = this.send([{ text: COUNTS, values: [jobId] }])[0] as unknown as CountRow[];
    const byStage = new Map<number, StageCounts>();
    let canaries = 0;
    let tainted = 0;
    for (const r of rows) {
      const c = byStage.get(r.stage) ?? { stage: r.stage, total: 0, done: 0, failed: 0, pending: 0, running: 0 };
      c.total += r.n;
      if (r.status === 'done') c.done += r.n;
      else if (r.status === 'failed') c.failed += r.n;
      else { c.running += r.busy; c.pending += r.n - r.busy; }
      byStage.set(r.stage, c);
      canaries += r.canaries;
      tainted += r.tainted;
    }
    this.kept = { jobId, stages: [...byStage.values()], canaries, tainted };
    if (!this.clearing) {
      this.clearing = true;
      setImmediate(() => { this.clearing = false; this.kept = null; });
    }
    return this.kept;
  }
}
