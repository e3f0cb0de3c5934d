/**
 * The REST API's answers that are not jobs (those are `JobView` in protocol.ts), and the bodies of the routes
 * that manage keys and reruns. Declared here, apart from the store's rows, so a column rename never changes
 * what a client reads. Workers online and class agreement are answered as `WorkerView` and
 * `ClassAgreement` (dashboard-protocol.ts), the shapes the dashboard already shows.
 */
import { z } from 'zod';
import { type JobStatus, type JobView, type TensorSpec, createJobSchema } from './protocol.js';

/** An API key as listed to an admin: never the key, never its hash. */
export interface ApiKeyView {
  id: string;
  name: string;
  admin: boolean;
  createdAt: number;
  revokedAt: number | null;
  /** Its share of workers in the fair share between researchers (1 by default; 2 gets twice the slots). */
  weight: number;
}

/** A key just made: `key` is shown this once and stored only as a hash. */
export interface CreatedApiKey extends ApiKeyView { key: string }

export const createKeySchema = z.object({ name: z.string().trim().min(1).max(100), admin: z.boolean().default(false) });
export type CreateKeyRequest = z.input<typeof createKeySchema>;

export const keyIdSchema = z.string().regex(/^key-[0-9a-f]{1,64}$/, 'expected a key id (key-...)');

/** `PATCH /api/v1/keys/:id`: an admin sets a key's fair-share weight. */
export const keyPatchSchema = z.object({ weight: z.number().min(0.01).max(1000) });
export type KeyPatch = z.input<typeof keyPatchSchema>;

/** `POST /api/v1/jobs/:id/rerun`: which tasks to compute again (only the tainted ones, for now). */
export const rerunSchema = z.object({ tainted: z.literal(true, { message: 'say what to rerun: { "tainted": true }' }) });
export type RerunRequest = z.input<typeof rerunSchema>;

export interface RerunResult { job: JobView; reopened: number }

/**
 * One replica of a job. A researcher sees who ran it only as a label that is stable within the job
 * (`volunteer 1`, `volunteer 2`, ...): enough to see which replicas came from the same volunteer, not who
 * that is. An admin key also gets the volunteer and worker ids, the network origin and the site.
 */
export interface ReplicaView {
  id: string;
  taskId: string;
  status: string;
  volunteer: string;
  workerClass: string;
  single: boolean;
  backend: string | null;
  runMs: number | null;
  error: string | null;
  leasedAt: number;
  leaseExpires: number;
  returnedAt: number | null;
  volunteerId?: string;
  workerId?: string;
  origin?: string | null;
  site?: string | null;
}

/** A volunteer's record, as an admin key lists it (`GET /api/v1/volunteers`). */
export interface VolunteerRecord {
  id: string;
  name: string | null;
  team: string | null;
  /** Replicas that agreed with an accepted result (or a canary's answer). */
  valid: number;
  /** Replicas that disagreed with one. */
  invalid: number;
  errors: number;
  /** Consecutive valid replicas. */
  streak: number;
  canaryPassed: number;
  canaryFailed: number;
  credit: number;
  quarantinedAt: number | null;
  createdAt: number;
}

/** The server's own runs of tasks since it started (`GET /api/v1/stats/server-runs`, admin): what trust costs it. */
export interface ServerRunsView {
  /** Known answers computed for canary tasks. */
  canaries: number;
  /** Tasks the volunteers could not settle, decided by the server's run. */
  checks: number;
  /** Accepted results recomputed as audits. */
  audits: number;
  /** Audits skipped because the runs already took their share of a core. */
  auditsSkipped: number;
  /** Checks and known answers not run: their task was settled while they waited, or this server does not hold it. */
  stale: number;
  /** Runs that failed on the server too. */
  failed: number;
  /** Milliseconds spent running, and the share of one core over the last 10 s. */
  busyMs: number;
  busyShare: number;
}

/** An uploaded model (`POST /api/v1/models`, `GET /api/v1/models/:hash`): content-addressed, validated. */
export interface ModelView {
  hash: string;
  size: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  opsets: Record<string, number>;
  /** Bytes of its weights, and of its largest single weight (what one GPU buffer must hold). */
  weightBytes: number;
  largestWeight: number;
  createdAt: number;
}

/** An uploaded data set (`POST /api/v1/datasets`): one array, first axis = items. */
export interface DatasetView { hash: string; dtype: string; shape: number[]; size: number; createdAt: number }

/**
 * `POST /api/v1/jobs`: the job request (protocol.ts), and what of it is kept once the job ends. A replica's outputs
 * are dropped when its job ends, but for those a result is; `keepReplicaOutputs` keeps every one (to study how
 * volunteers' answers differ, say).
 */
export const jobRequestSchema = createJobSchema.extend({ keepReplicaOutputs: z.boolean().default(false) });
export type JobRequest = z.input<typeof jobRequestSchema>;

/** One model (the whole or a stage) or data set a job uses, and whether other jobs use it too. */
export interface JobFileView { kind: 'model' | 'dataset'; hash: string; size: number; shared: boolean }

/** `GET /api/v1/jobs/:id/disk`: the disk a job holds on the server. */
export interface JobDiskView {
  jobId: string;
  /** Bytes of its replicas' outputs (its results among them, where a result is a replica's outputs). */
  outputs: number;
  /** Bytes of the results the server computed itself (known answers, tasks it decided). */
  results: number;
  keepReplicaOutputs: boolean;
  files: JobFileView[];
  /** What the job alone holds: its outputs, results, and the files no other job uses. */
  own: number;
}

/** `DELETE /api/v1/jobs/:id`: the job is gone. `status` is how it ended (a running job is cancelled first). */
export interface DeletedJob {
  id: string;
  status: JobStatus;
  /** Bytes of outputs and results deleted with it; its models and data sets go once no job has used them for a while. */
  bytes: number;
}
