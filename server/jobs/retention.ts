/**
 * What the server keeps, and for how long. A periodic sweep (time from the injected clock):
 * - finished jobs (completed, failed, cancelled) are deleted `retainDays` after they ended, when that is set;
 * - an ended job's replica outputs that no result refers to are dropped, unless the job keeps them. Not when each
 *   task is verified: while the job runs, a volunteer found out later (quarantined, or refuted by an audit) has the
 *   tasks it helped accept reopened and decided again from their other returned replicas' outputs
 *   (scheduler/settle.ts `reopen` then `verify`), so those must still be there. Once the job has ended its results
 *   are only marked tainted instead, and a rerun recomputes tainted tasks afresh;
 * - models and data sets no job refers to are noted, and removed (row and blob file) once noted `blobGraceMs` ago: a
 *   model uploaded a moment before its job is created is not taken away in between;
 * - the store then gives the pages it freed back to the file system.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Clock } from '../scheduler/clock.js';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/store.js';

const DAY_MS = 24 * 3600_000;

/** The settings, as fields server/config.ts takes into its schema (flags and environment parsed there). */
export const retentionConfigShape = {
  /** Finished jobs are deleted this many days after they ended (`--retain-days`, TABGRID_RETAIN_DAYS); unset: kept. */
  retainDays: z.coerce.number().min(0).optional(),
  /** Models and data sets no job refers to are removed after this long unused (TABGRID_BLOB_GRACE_MS; a day). */
  blobGraceMs: z.coerce.number().int().min(0).default(DAY_MS),
  /** How often the retention sweep runs (a minute). */
  retentionSweepMs: z.coerce.number().int().min(10).default(60_000),
};
export const retentionSettingsSchema = z.object(retentionConfigShape);
export type RetentionSettings = z.infer<typeof retentionSettingsSchema>;

/** What one sweep did. */
export interface RetentionSweep {
  deletedJobs: string[];
  /** Ended jobs whose unneeded replica outputs were dropped, and how many outputs that was. */
  prunedJobs: string[];
  droppedOutputs: number;
  removedModels: string[];
  removedDatasets: string[];
}

export interface RetentionDeps {
  store: Store;
  blobs: BlobStore;
  clock: Clock;
  log: Logger;
  settings: RetentionSettings;
}

export class Retention {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: RetentionDeps) {}

  /** Sweeps every `retentionSweepMs`, first now. */
  start(): void {
    if (this.timer) return;
    const run = () => {
      try {
        this.sweep();
      } catch (err) {
        this.deps.log.error({ err }, 'retention sweep failed');
      }
    };
    run();
    this.timer = setInterval(run, this.deps.settings.retentionSweepMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  sweep(): RetentionSweep {
    const { store, blobs, clock, log, settings } = this.deps;
    const now = clock.now();
    const out: RetentionSweep = { deletedJobs: [], prunedJobs: [], droppedOutputs: 0, removedModels: [], removedDatasets: [] };
    if (settings.retainDays !== undefined) {
      for (const id of store.jobsFinishedBefore(now - settings.retainDays * DAY_MS)) if (store.deleteJob(id)) out.deletedJobs.push(id);
    }
    for (const id of store.jobsToPrune()) {
      out.droppedOutputs += store.transaction(() => store.pruneReplicaOutputs(id));
      out.prunedJobs.push(id);
    }
    const removed = store.transaction(() => {
      store.markUnusedBlobs(now);
      return store.removeUnusedBlobs(now - settings.blobGraceMs);
    });
    // The rows went first: a blob without a row is never served, a row without its blob would be.
    for (const hash of [...removed.models, ...removed.datasets]) blobs.remove(hash);
    out.removedModels = removed.models;
    out.removedDatasets = removed.datasets;
    store.compact();
    if (out.deletedJobs.length || out.droppedOutputs || removed.models.length || removed.datasets.length) {
      log.info({
        deletedJobs: out.deletedJobs.length, prunedJobs: out.prunedJobs.length, droppedOutputs: out.droppedOutputs,
        removedModels: removed.models.length, removedDatasets: removed.datasets.length,
      }, 'retention sweep');
    }
    return out;
  }
}
