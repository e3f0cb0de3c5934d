/**
 * Interactive inference: one request, one answer, from a volunteer's warm session. A request goes to the worker
 * of the model's warm pool expected to answer first (its measured round trip plus its recent run time, and what
 * it already has in hand); if that one has not answered by its expected time, the request is hedged to the next,
 * and whichever answers first wins (the other is told to drop it). With `replicas: 1` only vetted volunteers
 * answer, and a sample of answers is recomputed by the server (a wrong one quarantines the volunteer); with
 * `replicas: 2` two volunteers of distinct network origins must agree within the tolerance.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { compareOutputs } from '../../shared/compare.js';
import { AppError } from '../../shared/errors.js';
import { InferVerified, type InferResponse, type InferRun, type InferWarm } from '../../shared/infer.js';
import type { Tensor } from '../../shared/tensor.js';
import type { Clock } from '../scheduler/clock.js';
import type { WorkerEntry } from '../scheduler/task-picker.js';
import type { ModelRow } from '../store/store.js';
import { answerProblem, decodeInputs, encodeOutputs } from './infer-tensors.js';
import type { PeerInfer } from './peer-infer.js';
import { type WarmWorker, WarmPool } from './warm-pool.js';

/** How the router reaches workers (the socket layer implements it). */
export interface WorkerLink {
  warm(workerId: string, req: InferWarm, timeoutMs: number): Promise<{ backend: string; warmMs: number }>;
  run(workerId: string, req: InferRun, timeoutMs: number): Promise<{ outputs: Tensor[]; runMs: number; backend: string }>;
  cancel(workerId: string, requestId: string): void;
  cool(workerId: string, modelHash: string): void;
}

export interface InferRouterDeps {
  /** The connected workers (the scheduler's one table). */
  workers: ReadonlyMap<string, WorkerEntry>;
  /** Whether a volunteer is vetted (and not quarantined): only they answer alone. */
  vetted(volunteerId: string): boolean;
  model(hash: string): ModelRow | undefined;
  clock: Clock;
  log: Logger;
  /** Chance that a single volunteer's answer is recomputed by the server. */
  auditRate: number;
  /** Recomputes an answer on the server after it was given (async; a mismatch quarantines the volunteer). */
  audit?(model: ModelRow, inputs: Tensor[], outputs: Tensor[], volunteerId: string): void;
  random?: () => number;
  /** A model's pool is let go after this long without a request (default 60 s). */
  idleMs?: number;
  /** The other servers on the database, asked when none of this server's workers may answer (peer-infer.ts). */
  peers?: PeerInfer;
}

interface Answer { workerId: string; outputs: Tensor[]; runMs: number; backend: string }

const newRequestId = () => `q-${randomBytes(8).toString('hex')}`;

export class InferRouter {
  readonly pool = new WarmPool();
  private link: WorkerLink | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private served = 0;

  constructor(private readonly deps: InferRouterDeps) {}

  setLink(link: WorkerLink): void {
    this.link = link;
  }

  start(): void {
    this.sweeper = setInterval(() => this.sweep(), 5_000);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  /** A worker left: it is in no pool any more. */
  workerLeft(workerId: string): void {
    this.pool.remove(workerId);
  }

  get requestsServed(): number {
    return this.served;
  }

  /** Lets go of the pools of models nobody asked for lately, and of members a pool no longer needs. */
  sweep(): void {
    for (const { model, workerIds } of this.pool.shrink(this.deps.clock.now(), this.deps.idleMs ?? 60_000)) {
      for (const id of workerIds) this.link?.cool(id, model);
    }
  }

  /** One request as the JSON body carries it (base64 tensors in and out). */
  async infer(req: { model: string; inputs: Record<string, { dtype: string; dims: number[]; data: string }>; replicas: 1 | 2; timeoutMs: number; rtol: number; atol: number }): Promise<InferResponse> {
    const { outputs, ...rest } = await this.inferTensors(req, (model) => decodeInputs(req.inputs as never, model.inputs));
    return { outputs: encodeOutputs(outputs), ...rest };
  }

  /**
   * One request with its inputs as tensors (made by `inputsFor` once the model is known and checked against it).
   * With `forwardWith` (the caller's API key), a request none of this server's workers may answer goes to the other
   * servers; without it (a request another server passed here), it is answered here or refused.
   */
  async inferTensors(
    req: { model: string; replicas: 1 | 2; timeoutMs: number; rtol: number; atol: number }, inputsFor: (model: ModelRow) => Tensor[],
    forwardWith?: string,
  ): Promise<Omit<InferResponse, 'outputs'> & { outputs: Tensor[] }> {
    const { clock } = this.deps;
    const start = clock.now();
    const model = this.deps.model(req.model);
    if (!model) throw new AppError('NOT_FOUND', `model ${req.model} not found: upload it first`);
    const inputs = inputsFor(model);
    if (forwardWith !== undefined && this.deps.peers && this.eligible(new Set(), new Set()).length === 0) {
      const answer = await this.deps.peers.infer(req, inputs, req.timeoutMs, forwardWith);
      if (answer) return { ...answer, ms: clock.now() - start };
    }
    if (!this.link) throw new AppError('UNAVAILABLE', 'interactive inference is not set up on this server');
    const deadline = start + req.timeoutMs;
    this.pool.used(model.hash, start);
    const answers = req.replicas === 1
      ? [await this.race(model, inputs, deadline, new Set(), new Set())]
      : await this.agreeing(model, inputs, deadline, req);
    const first = answers[0]!;
    this.served++;
    if (req.replicas === 1 && this.deps.audit && (this.deps.random ?? Math.random)() < this.deps.auditRate) {
      const volunteer = this.deps.workers.get(first.workerId)?.volunteerId;
      if (volunteer) this.deps.audit(model, inputs, first.outputs, volunteer);
    }
    return {
      outputs: first.outputs,
      verified: req.replicas === 1 ? InferVerified.vettedVolunteer : InferVerified.twoOrigins,
      ms: clock.now() - start,
      runMs: Math.max(...answers.map((a) => a.runMs)),
      hedged: answers.some((a) => (a as Answer & { hedged?: boolean }).hedged === true),
      backend: first.backend,
    };
  }

  /** Two answers of distinct origins that agree (a third is asked when the first two disagree). */
  private async agreeing(model: ModelRow, inputs: Tensor[], deadline: number, tol: { rtol: number; atol: number }): Promise<Answer[]> {
    const got: Answer[] = [];
    const usedWorkers = new Set<string>();
    const usedOrigins = new Set<string>();
    const ask = async () => {
      const a = await this.race(model, inputs, deadline, usedWorkers, usedOrigins);
      usedWorkers.add(a.workerId);
      const origin = this.deps.workers.get(a.workerId)?.origin;
      if (origin) usedOrigins.add(origin);
      got.push(a);
      return a;
    };
    await ask();
    for (let tries = 0; tries < 2; tries++) {
      const b = await ask();
      const match = got.slice(0, -1).find((a) => compareOutputs(a.outputs, b.outputs, tol).verdict === 'agree');
      if (match) return [match, b];
    }
    throw new AppError('UNAVAILABLE', 'the volunteers asked gave answers that disagree; try again');
  }

  /** Workers that may answer: connected, serving interactive requests, vetted, not excluded. */
  private eligible(excludeWorkers: Set<string>, excludeOrigins: Set<string>): WorkerEntry[] {
    return [...this.deps.workers.values()].filter((w) => w.interactive && !excludeWorkers.has(w.workerId)
      && !(w.origin && excludeOrigins.has(w.origin)) && this.deps.vetted(w.volunteerId));
  }

  /** Ready pool members of the model among `eligible`, best first; warms more when the pool is short. */
  private async candidates(model: ModelRow, eligible: WorkerEntry[], deadline: number): Promise<WarmWorker[]> {
    const ok = new Set(eligible.map((w) => w.workerId));
    const rank = () => this.pool.ready(model.hash).filter((w) => ok.has(w.workerId)).sort((a, b) => this.pool.expectedMs(a) - this.pool.expectedMs(b));
    let ready = rank();
    const members = this.pool.members(model.hash).filter((w) => ok.has(w.workerId)).length;
    const want = this.pool.target(model.hash, this.deps.clock.now()) - members;
    const fresh = eligible.filter((w) => !this.pool.has(model.hash, w.workerId)).slice(0, Math.max(0, want));
    const warming = fresh.map((w) => this.warm(model, w.workerId, deadline));
    if (ready.length === 0 && warming.length > 0) {
      // Nobody holds the model yet: the first request waits for the first session to load (within its time).
      await new Promise<void>((resolve) => {
        let left = warming.length;
        for (const p of warming) void p.then((ok) => { if (ok || --left === 0) resolve(); });
      });
      ready = rank();
    }
    return ready;
  }

  /** Asks a worker to load a session of the model; false when it could not (it then leaves the pool). Never rejects. */
  private async warm(model: ModelRow, workerId: string, deadline: number): Promise<boolean> {
    const { clock } = this.deps;
    this.pool.add(model.hash, workerId, clock.now());
    const sent = clock.now();
    try {
      const { warmMs } = await this.link!.warm(workerId, { modelHash: model.hash, modelUrl: `/models/${model.hash}` }, Math.max(1_000, deadline - sent));
      this.pool.markReady(model.hash, workerId, clock.now() - sent - warmMs);
      return true;
    } catch (err) {
      this.pool.remove(workerId, model.hash);
      this.deps.log.debug({ err, workerId, model: model.hash }, 'interactive warm-up failed');
      return false;
    }
  }

  /**
   * Asks the best worker; hedges to the next when it has not answered by its expected time, or at once when it
   * fails. Resolves with the first valid answer; the others are told to drop the request.
   */
  private async race(model: ModelRow, inputs: Tensor[], deadline: number, excludeWorkers: Set<string>, excludeOrigins: Set<string>): Promise<Answer & { hedged: boolean }> {
    const { clock } = this.deps;
    const eligible = this.eligible(excludeWorkers, excludeOrigins);
    if (eligible.length === 0) throw new AppError('UNAVAILABLE', 'no vetted volunteer who serves interactive requests is online');
    const queue = await this.candidates(model, eligible, deadline);
    if (queue.length === 0) throw new AppError('UNAVAILABLE', 'no volunteer could load the model in time');
    const requestId = newRequestId();
    const req: InferRun = { requestId, modelHash: model.hash, modelUrl: `/models/${model.hash}`, inputs };
    return new Promise((resolve, reject) => {
      const asked: WarmWorker[] = [];
      let pending = 0;
      let done = false;
      let hedgeTimer: NodeJS.Timeout | null = null;
      let lastError: unknown = null;
      const finish = () => { done = true; if (hedgeTimer) clearTimeout(hedgeTimer); };
      const next = () => {
        if (done) return;
        const w = queue.shift();
        if (!w) {
          if (pending === 0) { finish(); reject(lastError instanceof AppError ? lastError : new AppError('UNAVAILABLE', 'no volunteer answered in time')); }
          return;
        }
        const timeout = deadline - clock.now();
        if (timeout <= 0) { if (pending === 0) { finish(); reject(new AppError('UNAVAILABLE', 'no volunteer answered in time')); } return; }
        asked.push(w);
        pending++;
        w.inFlight++;
        const sent = clock.now();
        if (hedgeTimer) clearTimeout(hedgeTimer);
        hedgeTimer = setTimeout(next, this.pool.hedgeAfterMs(w));
        hedgeTimer.unref();
        this.link!.run(w.workerId, req, timeout).then((a) => {
          const problem = answerProblem(a.outputs, model.outputs);
          if (problem) throw new AppError('INVALID_PAYLOAD', `the worker's outputs do not fit the model: ${problem}`);
          this.pool.answered(model.hash, w.workerId, clock.now() - sent, a.runMs);
          if (done) return;
          finish();
          for (const other of asked) if (other !== w) this.link!.cancel(other.workerId, requestId);
          resolve({ workerId: w.workerId, ...a, hedged: asked.length > 1 });
        }).catch((err: unknown) => {
          lastError = err;
          // A worker that failed (paused, refused, timed out, answered nonsense) leaves the model's pool: the next
          // request goes elsewhere at once, and the pool warms another if it needs one.
          this.pool.remove(w.workerId, model.hash);
          this.link!.cool(w.workerId, model.hash);
          this.deps.log.debug({ err, workerId: w.workerId }, 'interactive request failed on a worker');
          if (!done) next();
        }).finally(() => {
          pending--;
          w.inFlight--;
          if (!done && pending === 0 && queue.length === 0) { finish(); reject(lastError instanceof AppError ? lastError : new AppError('UNAVAILABLE', 'no volunteer answered in time')); }
        });
      };
      next();
    });
  }
}
