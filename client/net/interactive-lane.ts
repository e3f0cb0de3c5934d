/**
 * The worker's interactive lane: `infer:warm`, `infer:run`, `infer:cancel` and `infer:cool` from the server,
 * apart from batch tasks. A request goes to the runner the moment it comes, whatever the batch pump is doing
 * (a batch task running, others in hand, a throttle's rest): it is never queued behind batch work. Whether it
 * then runs beside the batch task or in the runtime's very next slot is the runner's to say (the page runs it in
 * a Web Worker of its own, beside the batch task; onnxruntime-node runs a session on the JS thread, so there it
 * takes the slot after the running batch task, ahead of the next one). Interactive requests themselves run one at
 * a time, in order of arrival: the runtime would serialise them anyway, and a request still waiting can then be
 * withdrawn (`infer:cancel`, the hedge's other worker answered first).
 * Uses only socket.io-client's types and timers: no DOM, no Node APIs.
 */
import type { WireError } from '../../shared/errors.js';
import { type InferAnswer, InferErrorCode, type InferRun, type InferWarmAnswer, inferRunSchema, inferWarmSchema } from '../../shared/infer.js';
import type { Ack, WorkerHello } from '../../shared/protocol.js';
import type { LoopStatus } from './loop-status.js';
import type { WorkerSocket } from './open-worker-socket.js';
import type { Runner } from './work-loop-options.js';

/** Interactive sessions kept warm at once, at most: the server's warm pool asks for a few models, not dozens. */
export const MAX_WARM_MODELS = 4;

/** What the lane reads of, and reports to, the WorkLoop that holds it. */
export interface LaneHost {
  runner: Runner;
  serverUrl: string;
  /** False while paused or stopped: requests are refused at once, so the server hedges to another worker. */
  open(): boolean;
  report(patch: Partial<LoopStatus>): void;
  readonly status: Pick<LoopStatus, 'interactiveServed' | 'interactiveFailed'>;
}

interface Waiting { req: InferRun; ack: Ack<InferAnswer> }

export class InteractiveLane {
  /** Requests come in and wait here while an earlier one runs; by request id, in order of arrival. */
  private readonly waiting = new Map<string, Waiting>();
  private running = false;
  /** Models warm, least recently used first (re-inserted on each use). */
  private readonly warm = new Set<string>();

  constructor(private readonly host: LaneHost) {}

  /** Whether this worker serves interactive requests at all: its runner must be able to run them. */
  get supported(): boolean {
    return typeof this.host.runner.runInteractive === 'function';
  }

  /** What the hello adds: `interactive: true` when supported, nothing otherwise. */
  hello(): Pick<WorkerHello, 'interactive'> {
    return this.supported ? { interactive: true } : {};
  }

  /** Listens on a (new) socket; a runner without interactive methods listens to nothing. */
  attach(socket: WorkerSocket): void {
    if (!this.supported) return;
    socket.on('infer:warm', (req, ack) => this.onWarm(req, ack));
    socket.on('infer:run', (req, ack) => this.onRun(req, ack));
    socket.on('infer:cancel', (requestId) => this.onCancel(requestId));
    socket.on('infer:cool', (modelHash) => this.cool(modelHash));
    // The connection is gone, and with it every ack: requests still waiting are nobody's now. The sessions stay
    // warm for the reconnect (a network blip); a Stop lets them go (`close`).
    socket.on('disconnect', () => this.waiting.clear());
  }

  /** Refuses what waits (paused: the server should go elsewhere now, not after this worker resumes). */
  refuseWaiting(code: InferErrorCode, message: string): void {
    for (const { ack } of this.waiting.values()) refuse(ack, code, message);
    this.waiting.clear();
  }

  /** Lets every interactive session go (the volunteer pressed Stop: the device is theirs again). */
  close(): void {
    this.refuseWaiting(InferErrorCode.PAUSED, 'this worker stopped');
    for (const m of [...this.warm]) this.cool(m);
  }

  private onWarm(raw: unknown, ack: Ack<InferWarmAnswer>): void {
    if (typeof ack !== 'function') return;
    const parsed = inferWarmSchema.safeParse(raw);
    if (!parsed.success) { refuse(ack, InferErrorCode.INVALID_PAYLOAD, parsed.error.issues[0]?.message ?? 'bad infer:warm'); return; }
    if (!this.host.open()) { refuse(ack, InferErrorCode.PAUSED, 'this worker is paused'); return; }
    const { modelHash, modelUrl } = parsed.data;
    const warm = this.host.runner.warmInteractive;
    if (!warm) { ack({ ok: true, backend: 'unknown', warmMs: 0 }); return; } // loaded with its first run instead
    warm.call(this.host.runner, modelHash, this.absolute(modelUrl)).then(
      (res) => { this.noteWarm(modelHash); ack({ ok: true, backend: res.backend, warmMs: res.warmMs }); },
      (err) => refuse(ack, InferErrorCode.RUN_FAILED, errorText(err)),
    );
  }

  private onRun(raw: unknown, ack: Ack<InferAnswer>): void {
    if (typeof ack !== 'function') return;
    const parsed = inferRunSchema.safeParse(raw);
    if (!parsed.success) { refuse(ack, InferErrorCode.INVALID_PAYLOAD, parsed.error.issues[0]?.message ?? 'bad infer:run'); return; }
    if (!this.host.open()) { refuse(ack, InferErrorCode.PAUSED, 'this worker is paused'); return; }
    const req: InferRun = { ...parsed.data, modelUrl: this.absolute(parsed.data.modelUrl) };
    this.waiting.delete(req.requestId);
    this.waiting.set(req.requestId, { req, ack });
    this.next();
  }

  private onCancel(requestId: unknown): void {
    if (typeof requestId !== 'string') return;
    const w = this.waiting.get(requestId);
    if (!w) return; // running or answered: its answer may still go, and the server ignores it
    this.waiting.delete(requestId);
    refuse(w.ack, InferErrorCode.CANCELLED, 'withdrawn before it started');
  }

  private cool(modelHash: unknown): void {
    if (typeof modelHash !== 'string' || !this.warm.delete(modelHash)) return;
    this.host.runner.coolInteractive?.(modelHash);
    this.host.report({ interactiveWarm: [...this.warm] });
  }

  /** Starts the oldest waiting request when none runs. */
  private next(): void {
    if (this.running) return;
    const first = this.waiting.values().next();
    if (first.done) return;
    const { req, ack } = first.value;
    this.waiting.delete(req.requestId);
    if (!this.host.open()) { refuse(ack, InferErrorCode.PAUSED, 'this worker is paused'); this.next(); return; }
    this.running = true;
    void this.runOne(req, ack).finally(() => {
      this.running = false;
      this.next();
    });
  }

  private async runOne(req: InferRun, ack: Ack<InferAnswer>): Promise<void> {
    try {
      const outcome = await this.host.runner.runInteractive!(req);
      this.noteWarm(req.modelHash);
      this.host.report({ interactiveServed: this.host.status.interactiveServed + 1 });
      ack({
        ok: true,
        outputs: outcome.outputs.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims, data: t.data })),
        runMs: outcome.runMs,
        backend: outcome.backend,
      });
    } catch (err) {
      this.host.report({ interactiveFailed: this.host.status.interactiveFailed + 1 });
      refuse(ack, InferErrorCode.RUN_FAILED, errorText(err));
    }
  }

  /** A model's session is warm in the runner now; beyond MAX_WARM_MODELS the least recently used one goes. */
  private noteWarm(modelHash: string): void {
    const known = this.warm.delete(modelHash);
    this.warm.add(modelHash);
    const oldest = this.warm.size > MAX_WARM_MODELS ? this.warm.values().next().value : undefined;
    if (oldest !== undefined) this.cool(oldest);
    else if (!known) this.host.report({ interactiveWarm: [...this.warm] });
  }

  private absolute(url: string): string {
    return new URL(url, this.host.serverUrl).toString();
  }
}

function refuse(ack: Ack, code: InferErrorCode, message: string): void {
  const error: WireError = { code, message: message.slice(0, 2000) };
  ack({ ok: false, error });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
