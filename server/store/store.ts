/**
 * The state store, behind one interface so another engine (PostgreSQL) can replace SQLite later.
 * Only store/ knows SQL. Methods are synchronous (better-sqlite3 is); `transaction` groups several
 * calls into one atomic unit, so a crash never leaves half of a state change behind.
 */
import type { JobStatus, TensorSpec } from '../../shared/protocol.js';
import type { DType } from '../../shared/tensor.js';

export interface ApiKeyRow {
  id: string;
  keyHash: string;
  name: string;
  admin: boolean;
  createdAt: number;
  revokedAt: number | null;
  /** Its share of workers against other keys' running jobs (1 by default; 2 gets twice the slots). */
  weight: number;
}

export interface ModelRow {
  hash: string;
  size: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  opsets: Record<string, number>;
  /** Bytes of the model's weights (what a worker must hold in memory at least). */
  weightBytes: number;
  /** Bytes of its largest single weight (what one GPU buffer must hold). */
  largestWeight: number;
  createdAt: number;
}

export interface DatasetRow {
  hash: string;
  dtype: DType;
  shape: number[];
  /** Byte offset of the array data inside the stored .npy file. */
  dataOffset: number;
  size: number;
  createdAt: number;
}

export interface JobInput { name: string; dataset: string; dtype: DType; shape: number[]; dataOffset: number }

export interface JobRow {
  id: string;
  owner: string;
  name: string | null;
  model: string;
  /** One model per pipeline stage; [model] for a job run whole. */
  stageModels: string[];
  inputs: JobInput[];
  items: number;
  batchSize: number;
  replicas: number;
  maxReplicas: number;
  rtol: number;
  atol: number;
  priority: number;
  /** Trusted volunteers may have a task accepted on one replica (BOINC's adaptive replication). */
  adaptive: boolean;
  /** Fraction of tasks whose answer the server computes itself, to test volunteers with. */
  canaryRate: number;
  status: JobStatus;
  error: string | null;
  createdAt: number;
  finishedAt: number | null;
  /** Keep every replica's outputs after the job ends (absent: false; only those a result refers to are kept). */
  keepReplicaOutputs?: boolean;
}

export const TaskStatus = { pending: 'pending', done: 'done', failed: 'failed' } as const;
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];

export interface TaskRow {
  id: string;
  jobId: string;
  /** Pipeline stage, 0-based; stage k reads the verified output of stage k - 1 for the same batch. */
  stage: number;
  /** The model (stage shard) this task runs. */
  model: string;
  batch: number;
  itemStart: number;
  itemEnd: number;
  status: TaskStatus;
  /** A known-answer task: the server computed its result; volunteers' replicas only test them. */
  canary: boolean;
  /** Whether the task can be handed out (a canary is not until the server has its answer, a later
   * stage not until the stage before it is verified). */
  ready: boolean;
  /** When it became ready, for shard affinity. */
  readyAt: number | null;
  /** Replicas wanted so far: the job's quorum, raised by one on each disagreement up to maxReplicas. */
  wanted: number;
  /** Replicas leased or returned (not expired, released, failed or invalid). */
  active: number;
  failures: number;
  error: string | null;
  doneAt: number | null;
  /** Accepted in a job that had ended when a volunteer behind the result was quarantined: to be recomputed. */
  tainted: boolean;
}

export const ReplicaStatus = {
  leased: 'leased',
  returned: 'returned',
  expired: 'expired',
  released: 'released',
  failed: 'failed',
  invalid: 'invalid',
  cancelled: 'cancelled',
} as const;
export type ReplicaStatus = (typeof ReplicaStatus)[keyof typeof ReplicaStatus];

export interface ReplicaRow {
  id: string;
  taskId: string;
  jobId: string;
  workerId: string;
  volunteerId: string;
  status: ReplicaStatus;
  /** Equivalence class of the worker: backend|GPU vendor|architecture. */
  workerClass: string;
  /** Leased under adaptive replication: may be accepted alone. */
  single: boolean;
  /** Origin of the site whose widget ran it, if any. */
  site: string | null;
  leasedAt: number;
  leaseExpires: number;
  backend: string | null;
  runMs: number | null;
  error: string | null;
  returnedAt: number | null;
  /** The network origin the worker connected from (an IPv4 address, an IPv6 /64): quorums count distinct ones. */
  origin: string | null;
}

export type TaskPatch = Partial<Pick<TaskRow, 'status' | 'wanted' | 'active' | 'failures' | 'error' | 'doneAt' | 'ready' | 'readyAt' | 'tainted'>>;

export type ReplicaPatch = Partial<Pick<ReplicaRow, 'status' | 'backend' | 'runMs' | 'error' | 'returnedAt' | 'workerClass'>>;

export interface VolunteerRow {
  id: string;
  name: string | null;
  team: string | null;
  /** Replicas that agreed with an accepted result (or a canary's answer). */
  valid: number;
  /** Replicas that disagreed with one (a wrong canary counts three). */
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

export type VolunteerPatch = Partial<Omit<VolunteerRow, 'id' | 'createdAt'>>;

/** A volunteer's counters, added to rather than set: several servers of one database may count for one volunteer. */
export type VolunteerCounts = Partial<Pick<VolunteerRow, 'valid' | 'invalid' | 'errors' | 'canaryPassed' | 'canaryFailed' | 'credit'>>;

/** The batches [from, to) of a job, in every stage: the slice of work one server of several holds (SLICE_BATCHES long). */
export interface BatchRange { from: number; to: number }

/** Batches per slice: servers sharing one database claim a job's work in slices of this many batches. */
export const SLICE_BATCHES = 256;

export interface SiteRow { origin: string; credit: number; tasks: number; firstSeen: number }
export interface TeamRow { team: string; credit: number; volunteers: number }

export interface ClassPairRow { a: string; b: string; agree: number; disagree: number }

/** Task ids are derived, so a stage finds the task before or after it without a query. */
export const taskId = (jobId: string, stage: number, batch: number) => `${jobId}-s${stage}-t${batch}`;

export interface TaskCounts { total: number; done: number; failed: number; pending: number; running: number }

export interface StageCounts extends TaskCounts { stage: number }

/** What a job's view counts: its tasks by stage, its known-answer and tainted tasks, the replicas issued. */
export interface ViewCounts { stages: StageCounts[]; canaries: number; tainted: number; replicas: number }

/** Which tasks a worker may be offered. */
export interface TaskFilter {
  /** Only tasks of these models. */
  models?: string[];
  /** No tasks of these models. */
  excludeModels?: string[];
  /** Tasks of these models only once they have been ready since this time (shard affinity). */
  deferModels?: string[];
  readySince?: number;
  /** The running jobs to look in, in this order (fair share); all running jobs by priority and age when absent. */
  jobs?: string[];
}

/** What fair share needs to know of a running job. */
export interface RunningJobRow { id: string; owner: string; priority: number; createdAt: number; weight: number }

/** Bytes a job holds in the store: its replicas' outputs, and the results the server computed (a result that is a
 * replica's outputs is counted once, under outputs). */
export interface JobBytes { outputs: number; results: number }

/** What a removal of unreferenced models and data sets took away (their blob files are the caller's to remove). */
export interface RemovedBlobs { models: string[]; datasets: string[] }

/** A savepoint opened inside a transaction: released (kept) or rolled back to, once. */
export interface Savepoint { release(): void; rollback(): void }

export interface Store {
  transaction<T>(fn: () => T): T;
  /**
   * Runs `fn` as a transaction whose commit need not be waited for (a networked engine sends it and goes on): `done`
   * is told once it is durable (null) or failed, on a later turn or at the next `settle`; the next transaction begins
   * only after that. Throws, and never tells `done`, when `fn` throws or the commit cannot be sent. Absent: use
   * `commitThen`, which commits before it returns.
   */
  transactionThen?<T>(fn: () => T, done: (err: Error | null) => void): T;
  /** Waits for a commit `transactionThen` sent and tells its `done`. */
  settle?(): void;
  /** Opens a savepoint inside the current transaction (for a caller that undoes its own memory as well). */
  savepoint(): Savepoint;
  close(): void;

  insertApiKey(row: ApiKeyRow): void;
  /** The key with this hash, unless it was revoked. */
  findApiKey(keyHash: string): ApiKeyRow | undefined;
  /** Every key, revoked ones included (with `revokedAt`). */
  listApiKeys(): ApiKeyRow[];
  /** Sets a key's fair-share weight; false when there is no such key. */
  setApiKeyWeight(id: string, weight: number): boolean;
  /** Revokes a key; false when there is no such key or it was revoked already. */
  revokeApiKey(id: string, at: number): boolean;
  countApiKeys(): number;

  putModel(row: ModelRow): void;
  getModel(hash: string): ModelRow | undefined;

  putDataset(row: DatasetRow): void;
  getDataset(hash: string): DatasetRow | undefined;

  /** Finds the volunteer with this token hash, creating it when new. */
  volunteerFor(tokenHash: string, newId: string, now: number): { id: string; created: boolean };
  getVolunteer(id: string): VolunteerRow | undefined;
  updateVolunteer(id: string, patch: VolunteerPatch): void;
  /** Adds to a volunteer's counters (deltas, not values) and sets what `patch` names, in one write. */
  addToVolunteer(id: string, counts: VolunteerCounts, patch?: VolunteerPatch): void;
  listVolunteers(): VolunteerRow[];
  /** Volunteers ordered by credit, best first. */
  topVolunteers(limit: number): VolunteerRow[];
  /** 1-based position by credit. */
  volunteerRank(id: string): number;
  topTeams(limit: number): TeamRow[];
  creditSite(origin: string, credit: number, now: number): void;
  topSites(limit: number): SiteRow[];

  createJob(job: JobRow, tasks: TaskRow[]): void;
  /**
   * Creates a job without holding up the calls made meanwhile (a networked engine writes it on a connection of its
   * own): it exists, committed, once the promise resolves. Absent: use `createJobThen`.
   */
  createJobAsync?(job: JobRow, tasks: TaskRow[]): Promise<void>;
  getJob(id: string): JobRow | undefined;
  listJobs(owner?: string): JobRow[];
  /** The running jobs, in no particular order. */
  runningJobs(): RunningJobRow[];
  setJobStatus(id: string, status: JobStatus, at: number, error?: string | null): void;
  taskCounts(jobId: string): TaskCounts;
  stageCounts(jobId: string): StageCounts[];
  /** Whether any task of the job is not done yet. */
  hasUnfinishedTasks(jobId: string): boolean;
  replicaCount(jobId: string): number;
  canaryCount(jobId: string): number;
  failedTasks(jobId: string): TaskRow[];
  /**
   * A job's open tasks and its done known-answer tasks, in batch order within each stage (recovery: the scheduler's
   * memory is rebuilt from these); only those of batches in `range` when given.
   */
  recoveryTasks(jobId: string, range?: BatchRange): TaskRow[];
  /** The replicas of a job's open and known-answer tasks, oldest first (recovery); only those of batches in `range`. */
  recoveryReplicas(jobId: string, range?: BatchRange): ReplicaRow[];
  /** Tasks of the job marked tainted. */
  taintedCount(jobId: string): number;
  /**
   * A view's counts where each is a scan of the job (a shared database): while the job runs they may lag, read again in
   * the background no more often than their cost allows; exact once it has `ended`. Without it, the counts above.
   */
  viewCounts?(jobId: string, ended: boolean): ViewCounts;

  /** Pending tasks of running jobs that want another replica and that this volunteer has not touched. */
  assignableTasks(volunteerId: string, limit: number, filter?: TaskFilter): TaskRow[];
  /** Known-answer tasks of running jobs that this volunteer has not run yet, picked at random. */
  probeTasks(volunteerId: string, limit: number): TaskRow[];
  /** Canary tasks still waiting for the server to compute their answer. */
  unreadyCanaries(): TaskRow[];
  /** Pending tasks to which this volunteer has returned a replica. */
  pendingTasksReturnedBy(volunteerId: string): TaskRow[];
  /** Verified (not canary) tasks of running jobs to which this volunteer has returned a replica. */
  acceptedTasksReturnedBy(volunteerId: string): TaskRow[];
  /** Verified (not canary) tasks of jobs no longer running whose result this volunteer agreed with. */
  endedTasksReturnedBy(volunteerId: string): TaskRow[];
  /** Pending tasks of running jobs with replicas out or back (after a restart: those to decide again). */
  openTasksWithReplicas(): TaskRow[];
  /** Open tasks of running jobs with replicas back and none out: those waiting for a volunteer (at most `limit`). */
  stalledTasks(limit: number): TaskRow[];
  /** A job's tasks marked tainted, earliest stage first. */
  taintedTasks(jobId: string): TaskRow[];
  clearTaskResult(id: string): void;
  getTask(id: string): TaskRow | undefined;
  updateTask(id: string, patch: TaskPatch): void;
  taskResult(id: string): Uint8Array | undefined;
  /** Sets a task's verified outputs to these bytes (a result the server computed). */
  setTaskResult(id: string, result: Uint8Array): void;
  /** Sets a task's verified outputs to those of one of its returned replicas (stored once, not copied). */
  setTaskResultOf(id: string, replicaId: string): void;
  /** Verified outputs of a job's done tasks of one stage, in batch order. */
  taskResults(jobId: string, stage: number): Iterable<{ batch: number; result: Uint8Array }>;

  insertReplica(row: ReplicaRow): void;
  getReplica(id: string): ReplicaRow | undefined;
  updateReplica(id: string, patch: ReplicaPatch): void;
  /** Stores a returned replica's outputs (packed tensors). */
  setReplicaOutputs(id: string, outputs: Uint8Array): void;
  replicaOutputs(id: string): Uint8Array | undefined;
  /** Replicas of a task in a given status, oldest first. */
  replicasOfTask(taskId: string, status?: ReplicaStatus): ReplicaRow[];
  leasedBefore(now: number): ReplicaRow[];
  leasedByWorker(workerId: string): ReplicaRow[];
  /** How many replicas this worker holds leased now. */
  leasedCountByWorker(workerId: string): number;
  /**
   * How many replicas newcomers of this network origin hold leased now: volunteers short of `vetted` (fewer known
   * answers passed or confirmed results than it names, any failed, or created after `createdBefore`).
   */
  newcomerLeasesByOrigin(origin: string, vetted: { canaries: number; valid: number; createdBefore: number }): number;
  leasedInJob(jobId: string): ReplicaRow[];
  /** All replicas still leased, e.g. left from before a restart. */
  allLeased(): ReplicaRow[];
  leasedByVolunteer(volunteerId: string): ReplicaRow[];
  replicasOfJob(jobId: string): ReplicaRow[];

  // Retention: deleting jobs, dropping outputs no result needs, forgetting unreferenced models and data sets.

  /** Removes a job with its tasks, replicas, replicas' outputs and results; false when there is no such job. */
  deleteJob(id: string): boolean;
  /** Ended jobs (not running) whose unneeded replica outputs have not been dropped yet, and that do not keep them. */
  jobsToPrune(): string[];
  /**
   * Drops the outputs of a job's replicas that no task result refers to, and notes the job as pruned (until its
   * status changes again); returns how many were dropped.
   */
  pruneReplicaOutputs(jobId: string): number;
  /** Ended jobs that finished at or before `at`, oldest first. */
  jobsFinishedBefore(at: number): string[];
  jobBytes(jobId: string): JobBytes;
  /** How many jobs refer to each of these models (as the model or a stage) or data sets, by hash. */
  blobUsers(hashes: string[]): Map<string, number>;
  /**
   * Notes models and data sets no job refers to as unused since `now` (those already noted keep their time), and
   * clears the note on those a job refers to again.
   */
  markUnusedBlobs(now: number): void;
  /** Removes the rows of models and data sets no job refers to that were noted unused at or before `since`. */
  removeUnusedBlobs(since: number): RemovedBlobs;
  /** Gives the space that deleted rows left back to the file system (a no-op where there is no file). */
  compact(): void;

  /** Counts one comparison between results of two worker classes (order-independent). */
  recordClassPair(a: string, b: string, agree: boolean): void;
  classPairs(): ClassPairRow[];
}

/** `store.transactionThen` where the engine has it; else a transaction committed before it returns, then `done`. */
export function commitThen<T>(store: Store, fn: () => T, done: (err: Error | null) => void): T {
  if (store.transactionThen) return store.transactionThen(fn, done);
  const out = store.transaction(fn);
  done(null);
  return out;
}

/** `store.createJobAsync` where the engine has it; else the job created at once. */
export async function createJobThen(store: Store, job: JobRow, tasks: TaskRow[]): Promise<void> {
  if (store.createJobAsync) await store.createJobAsync(job, tasks);
  else store.createJob(job, tasks);
}
