/**
 * The server's internal event bus: what the scheduler, the server's own runs and the worker sockets report,
 * for live views (the dashboard) and the metrics (server/metrics/) to follow without either knowing about them.
 * The settle and server-run events are emitted where the decision is made, inside the turn's transaction.
 */
import { EventEmitter } from 'node:events';

/** How a returned result was judged: it agreed with the accepted answer, was refused (outputs that do not fit), or disagreed. */
export const ResultVerdict = { accepted: 'accepted', refused: 'refused', disagreed: 'disagreed' } as const;
export type ResultVerdict = (typeof ResultVerdict)[keyof typeof ResultVerdict];

/** What the Settler (server/scheduler/settle.ts) reports as it applies verification outcomes. */
export interface SettleEventMap {
  /** A task settled: done (verified, or a canary's answer computed) or failed (the server could not run it either). */
  'task:settled': [outcome: 'done' | 'failed', canary: boolean];
  /** A task's result accepted, on `replicas` returned replicas: by a quorum of volunteers, or by the server's own run. */
  'task:accepted': [replicas: number, decidedBy: 'quorum' | 'server'];
  /** `count` returned results judged alike (the replicas of one decision). */
  'result:judged': [verdict: ResultVerdict, count: number];
  /** A worker reported that it could not run a replica. */
  'replica:errored': [];
  'lease:expired': [];
  /** An audit compared the server's run with an accepted result. */
  'audit:judged': [refuted: boolean];
}

/** What the server's own runs (server/verify/server-runs.ts) report. */
export interface ServerRunEventMap {
  /** A run finished: `ok` false when the server could not run the task either. */
  'server-run:done': [kind: 'canary' | 'check' | 'audit', ok: boolean, ms: number];
  /** An audit not run: the server's runs already took their share of a core, or too many were queued. */
  'audit:skipped': [];
}

/** What the per-turn group commit (server/api/tick-batch.ts) reports. */
export interface TickEventMap {
  /** A socket event answered: `ms` from its arrival to its reply, the commit included. */
  'socket:answered': [event: string, ms: number];
  /** One turn's transaction: how many events it held, how long it took, and whether it committed. */
  'tick:committed': [events: number, ms: number, ok: boolean];
}

export interface AppEventMap extends SettleEventMap, ServerRunEventMap, TickEventMap {
  'job:changed': [jobId: string];
  'worker:joined': [workerId: string];
  'worker:left': [workerId: string];
  'volunteer:quarantined': [volunteerId: string];
}

/** What a module that only reports needs of the bus: `AppEvents` is one. */
export interface EventSink<M extends { [K in keyof M]: unknown[] }> {
  emit<K extends keyof M & string>(event: K, ...args: M[K]): unknown;
}

export class AppEvents extends EventEmitter<AppEventMap> {
  constructor() {
    super();
    this.setMaxListeners(1000);
  }
}
