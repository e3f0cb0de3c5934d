/**
 * What the server's own runs answer (server/verify/server-runs.ts): a known-answer task's answer, the decision on a
 * task the volunteers could not settle, an audit of an accepted result. The first two join the socket events' group
 * commit where there is one (`turn`), else commit without being waited for where the store can
 * (Store.transactionThen): `done` is told the outcome, and what follows (tasks pushed, leases withdrawn) happens only
 * once the answer is durable. (A transaction of their own would first wait for the commit in flight, on the server's
 * thread: on PostgreSQL a third of its time under load, before the turn.)
 */
import type { Logger } from 'pino';
import { packTensors } from '../../shared/tensor-pack.js';
import type { Tensor } from '../../shared/tensor.js';
import { type ModelRow, type Store, commitThen } from '../store/store.js';
import type { Clock } from './clock.js';
import { outputProblem } from './result-check.js';
import { type Effects, type Settler, noEffects } from './settle.js';

export interface ServerAnswersDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  settler: Settler;
  model(hash: string): ModelRow;
  /** New work may be assignable. */
  dispatch(): void;
  /** Carries out a decision's effects (withdrawals, checks, audits, job changes). */
  after(fx: Effects): void;
  turn?: Turn;
}

type Done = (err: Error | null) => void;

/** Runs `run` in the next group commit of the socket events (server/api/tick-batch.ts); `landed` once it committed. */
export type Turn = (event: string, run: () => void, landed: Done) => void;

export class ServerAnswers {
  constructor(private readonly deps: ServerAnswersDeps) {}

  /** The server computed a canary task's answer: the task is settled and can test volunteers. */
  canaryReady(taskId: string, outputs: Tensor[] | null, done?: Done): void {
    const { store, clock, settler } = this.deps;
    this.commit('server:canary', () => {
      const task = store.getTask(taskId);
      if (!task || task.status !== 'pending') return;
      if (outputs) {
        store.setTaskResult(taskId, packTensors(outputs));
        store.updateTask(taskId, { status: 'done', ready: true, doneAt: clock.now() });
        settler.taskDone(task);
      } else {
        // The server could not compute it: volunteers compute it like any other task.
        store.updateTask(taskId, { ready: true });
      }
    }, (err) => {
      if (!err) this.deps.dispatch();
      this.landed('canary', taskId, err, done);
    });
  }

  /** The server's own run of a task it was asked to decide: its answer settles the task, or its failure fails it. */
  serverChecked(taskId: string, outputs: Tensor[] | null, error: string | null, done?: Done): void {
    const { store, settler } = this.deps;
    const fx = noEffects();
    this.commit('server:check', () => {
      const task = store.getTask(taskId);
      if (!task) return;
      // The server's outputs are held to the model like anyone's: a model whose outputs do not fit its own
      // declaration (or the batch) cannot be verified, and fails with that reason.
      const problem = outputs && outputProblem(outputs, this.deps.model(task.model).outputs, task.itemEnd - task.itemStart);
      if (outputs && !problem) settler.serverDecided(task, outputs, fx);
      else settler.serverFailed(task, problem ? `its outputs do not fit the model: ${problem}` : error ?? 'unknown error', fx);
    }, (err) => {
      if (!err) this.deps.after(fx);
      this.landed('check', taskId, err, done);
    });
  }

  /** The server's audit of an accepted result; false when it refuted the result. */
  audited(taskId: string, outputs: Tensor[]): boolean {
    const { store, settler } = this.deps;
    const fx = noEffects();
    const stood = store.transaction(() => {
      const task = store.getTask(taskId);
      return task ? settler.audited(task, outputs, fx) : true;
    });
    this.deps.after(fx);
    return stood;
  }

  /** `run` in the turn's group commit where there is one, else in a transaction of its own; `landed` once durable. */
  private commit(event: string, run: () => void, landed: Done): void {
    if (this.deps.turn) this.deps.turn(event, run, landed);
    else commitThen(this.deps.store, run, landed);
  }

  /** A transaction not waited for is known now: a failure goes to `done`, or to the log where nobody asked. */
  private landed(what: string, taskId: string, err: Error | null, done?: Done): void {
    if (done) done(err);
    else if (err) this.deps.log.error({ err, taskId }, `the ${what}'s answer did not commit`);
  }
}
