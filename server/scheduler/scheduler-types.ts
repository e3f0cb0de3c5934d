/**
 * The scheduler's contract with what surrounds it: its configuration, the callbacks of the transport and of
 * the server's own runs, its dependencies, and the one error it raises that keeps what it wrote.
 */
import type { Logger } from 'pino';
import { AppError } from '../../shared/errors.js';
import type { TaskAssignment, WireTensor } from '../../shared/protocol.js';
import type { OriginShare } from '../cluster/origin-share.js';
import type { EventSink, SettleEventMap } from '../events.js';
import type { JobRow, Store, TaskRow } from '../store/store.js';
import type { ReputationPolicy } from '../verify/reputation.js';
import type { Turn } from './server-answers.js';
import type { Clock } from './clock.js';
import type { StragglerPolicy } from './stragglers.js';

export interface SchedulerConfig {
  leaseMs: number;
  /** Failed, invalid or lapsed replicas a task may have before it is given up as failed. */
  maxFailures: number;
  /** Chance per slot that a vetted volunteer gets a known-answer task as a spot check. */
  spotCheckRate?: number;
  reputation?: ReputationPolicy;
  /** A pipeline stage's task waits this long for a worker that holds its shard before others may take it. */
  shardAffinityMs?: number;
  /** Leases a newcomer may hold at once (default 2). */
  newcomerLeases?: number;
  /** Leases one network origin's newcomers may hold together before another newcomer there gets none (default 32). */
  newcomerLeasesPerOrigin?: number;
  /** Base chance that an accepted result is audited; results a young volunteer stood behind: five times that. */
  auditRate?: number;
  stragglers?: StragglerPolicy;
  /** An open task with replicas back that no idle worker may take (each has run it) for this long goes to the server. */
  stallMs?: number;
}

/** The server's own runs, as the scheduler asks for them (server/verify/server-runs.ts). */
export interface ServerRunQueue {
  /** The server's run decides the task; answers come back through `serverChecked`. */
  check(task: TaskRow): boolean;
  /** The server recomputes an accepted result if it has spare time; answers come back through `audited`. */
  audit(task: TaskRow): boolean;
}

export interface SchedulerEvents {
  deliver(workerId: string, tasks: TaskAssignment[]): void;
  cancel(workerId: string, replicaIds: string[]): void;
  jobChanged?(jobId: string): void;
  volunteerQuarantined?(volunteerId: string): void;
}

export interface SchedulerDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  config: SchedulerConfig;
  /** The input tensors of one task (a slice of the job's data sets). */
  taskInputs(job: JobRow, task: TaskRow): WireTensor[];
  /** Random numbers in [0, 1), injectable for tests. */
  random?: () => number;
  /** Told of each verification outcome as it is decided (the metrics count them). */
  observer?: EventSink<SettleEventMap>;
  /** Servers sharing a database: what each origin holds on the others, and where this one's newcomers' leases are told. */
  origins?: OriginShare;
  /** The socket events' group commit, which the server's own runs' answers join (server-answers.ts). */
  turn?: Turn;
}

export interface ResultMeta { backend: string; runMs: number }

/**
 * A result that was recorded (as invalid, counted against its replica and volunteer) and is refused: the
 * caller answers the worker with the error but must keep what was written.
 */
export class ResultRefused extends AppError {
  constructor(message: string) {
    super('INVALID_PAYLOAD', message);
  }
}
