/**
 * A job's counts on PostgreSQL: tasks by stage and status, known-answer and tainted tasks, replicas issued. Memory
 * holds only the slices a server took, so these come from the database, and each is a scan of the job (a second for a
 * job of a million tasks).
 *
 * - The store's count methods read them now, exactly.
 * - A job's view (`viewCounts`: REST, the CLI, the dashboard, which asks every half second while a job changes) reads
 *   them all in one round trip, on the server's thread once, then again in the background on a connection of its own,
 *   no sooner than ten times what the last read took (one second at least), so a view never holds up the server and
 *   the reads take a tenth of the database's time at most. While the job runs a view may lag by that much; once it has
 *   ended, it is read once more, exactly, and kept.
 */
import type { StageCounts, TaskCounts, ViewCounts } from '../store.js';
import { totalCounts } from '../view-counts.js';
import type { Statement } from './pg-sync.js';

type Send = (statements: Statement[]) => Record<string, unknown>[][];
type Ask = (statements: Statement[]) => Promise<Record<string, unknown>[][]>;

interface CountRow { stage: number; status: string; n: number; busy: number; canaries: number; tainted: number }

const COUNTS = `SELECT stage, status, COUNT(*) AS n, COUNT(*) FILTER (WHERE active > 0) AS busy,
  COUNT(*) FILTER (WHERE canary) AS canaries, COUNT(*) FILTER (WHERE tainted) AS tainted
  FROM tasks WHERE job_id = $1 GROUP BY stage, status ORDER BY stage`;
const REPLICAS = 'SELECT COUNT(*) AS n FROM replicas WHERE job_id = $1';
const viewStatements = (jobId: string): Statement[] => [{ text: COUNTS, values: [jobId] }, { text: REPLICAS, values: [jobId] }];

/** Reads again no sooner than this many times what the last read took, nor than MIN_AGE_MS. */
const PACE = 10;
const MIN_AGE_MS = 1_000;
/** Jobs whose view counts are kept (the least recently viewed go first). */
const KEPT_VIEWS = 1_000;

interface Counts { stages: StageCounts[]; canaries: number; tainted: number }
interface Paced { counts: ViewCounts; at: number; took: number; ended: boolean; reading: boolean }

function countsFrom(rows: CountRow[]): Counts {
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
  return { stages: [...byStage.values()], canaries, tainted };
}

/** A view's counts from the answers to `viewStatements`. */
function viewFrom([rows, replicas]: Record<string, unknown>[][]): ViewCounts {
  return { ...countsFrom(rows as unknown as CountRow[]), replicas: Number(replicas?.[0]?.n ?? 0) };
}

export class PgJobCounts {
  private readonly views = new Map<string, Paced>();

  /** `send`: the store's connection (in its transaction); `ask`: a connection of its own, not waited for. */
  constructor(private readonly send: Send, private readonly ask: () => Ask, private readonly now: () => number = () => performance.now()) {}

  /** The job is gone: nothing of it is kept. */
  drop(jobId: string): void {
    this.views.delete(jobId);
  }

  stageCounts(jobId: string): StageCounts[] {
    return this.exact(jobId).stages;
  }

  taskCounts(jobId: string): TaskCounts {
    return totalCounts(this.exact(jobId).stages);
  }

  canaryCount(jobId: string): number {
    return this.exact(jobId).canaries;
  }

  taintedCount(jobId: string): number {
    return this.exact(jobId).tainted;
  }

  viewCounts(jobId: string, ended: boolean): ViewCounts {
    let v = this.views.get(jobId);
    if (v) {
      this.views.delete(jobId);
      this.views.set(jobId, v);
    }
    if (!v || (ended && !v.ended)) {
      const started = this.now();
      const counts = viewFrom(this.send(viewStatements(jobId)));
      v = { counts, at: this.now(), took: this.now() - started, ended, reading: false };
      this.views.set(jobId, v);
      while (this.views.size > KEPT_VIEWS) this.views.delete(this.views.keys().next().value!);
    } else if (!v.ended && !v.reading && this.now() - v.at >= Math.max(MIN_AGE_MS, PACE * v.took)) {
      this.refresh(jobId, v);
    }
    return { ...v.counts, stages: v.counts.stages.map((s) => ({ ...s })) };
  }

  private refresh(jobId: string, v: Paced): void {
    v.reading = true;
    const started = this.now();
    this.ask()(viewStatements(jobId)).then((answers) => {
      // An exact read made meanwhile (the job ended) stands.
      if (v.ended || this.views.get(jobId) !== v) return;
      v.counts = viewFrom(answers);
      v.at = this.now();
      v.took = v.at - started;
    }, () => { /* read again at the next view */ }).finally(() => { v.reading = false; });
  }

  private exact(jobId: string): Counts {
    return countsFrom(this.send([{ text: COUNTS, values: [jobId] }])[0] as unknown as CountRow[]);
  }
}
