/**
 * The worker side of the protocol, shared by the volunteer page and the headless Node worker:
 * say hello, keep `slots` tasks in hand (so the next one is there when one finishes), run them one at a
 * time through a Runner, return outputs as binary. Uses only socket.io-client: no DOM, no Node APIs.
 */
import { io, type Socket } from 'socket.io-client';
import type {
  AckResponse, ClientToServerEvents, ServerToClientEvents, TaskAssignment, WorkerHello,
} from '../../shared/protocol.js';
import type { Tensor } from '../../shared/tensor.js';

export interface RunOutcome { outputs: Tensor[]; runMs: number; backend: string }

/** Runs one task's model on its inputs. The page uses onnxruntime-web, the headless worker onnxruntime-node. */
export interface Runner {
  run(task: TaskAssignment, modelUrl: string): Promise<RunOutcome>;
}

export type LoopState = 'idle' | 'connecting' | 'waiting' | 'working' | 'stopped' | 'error';

export interface LoopStatus {
  state: LoopState;
  connected: boolean;
  volunteerId: string | null;
  tasksDone: number;
  tasksFailed: number;
  computeMs: number;
  currentJob: string | null;
  backend: string | null;
  lastError: string | null;
}

export interface WorkLoopOptions {
  serverUrl: string;
  hello: Omit<WorkerHello, 'token'>;
  token?: string;
  /** Tasks to hold at once: one running, the rest waiting (default 2). */
  slots?: number;
  runner: Runner;
  onStatus?: (s: LoopStatus) => void;
  /** Called when the server issues or confirms the volunteer token, so the caller can keep it. */
  onToken?: (token: string) => void;
}

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** A connected worker; `start()` connects and works until `stop()`. */
export class WorkLoop {
  private socket: ClientSocket | null = null;
  private queue: TaskAssignment[] = [];
  private running: TaskAssignment | null = null;
  private cancelled = new Set<string>();
  private token: string | undefined;
  private pumping = false;
  readonly status: LoopStatus = {
    state: 'idle', connected: false, volunteerId: null, tasksDone: 0, tasksFailed: 0,
    computeMs: 0, currentJob: null, backend: null, lastError: null,
  };

  constructor(private readonly opts: WorkLoopOptions) {
    this.token = opts.token;
  }

  private get slots(): number {
    return this.opts.slots ?? 2;
  }

  start(): void {
    if (this.socket) return;
    this.update({ state: 'connecting', lastError: null });
    const socket: ClientSocket = io(this.opts.serverUrl, { transports: ['websocket', 'polling'] });
    this.socket = socket;
    socket.on('connect', () => this.onConnect(socket));
    socket.on('disconnect', () => {
      // The server hands our leases back on disconnect; what we hold is no longer ours.
      this.queue = [];
      this.update({ connected: false, state: this.socket ? 'connecting' : 'stopped' });
    });
    socket.on('connect_error', (err) => this.update({ lastError: `cannot reach server: ${err.message}` }));
    socket.on('task:assign', (tasks) => this.accept(tasks));
    socket.on('task:cancel', (ids) => {
      for (const id of ids) this.cancelled.add(id);
      this.queue = this.queue.filter((t) => !this.cancelled.has(t.replicaId));
    });
  }

  /** Disconnects at once; the server returns any leased tasks to the queue. */
  stop(): void {
    const s = this.socket;
    this.socket = null;
    this.queue = [];
    s?.disconnect();
    this.update({ state: 'stopped', connected: false, currentJob: null });
  }

  private onConnect(socket: ClientSocket): void {
    socket.emit('worker:hello', { ...this.opts.hello, token: this.token }, (res) => {
      if (!res.ok) { this.update({ state: 'error', lastError: `server refused hello: ${res.error.message}` }); return; }
      this.token = res.token;
      this.opts.onToken?.(res.token);
      this.update({ connected: true, volunteerId: res.volunteerId, state: 'waiting' });
      this.requestWork();
    });
  }

  private requestWork(): void {
    const socket = this.socket;
    const free = this.slots - this.queue.length - (this.running ? 1 : 0);
    if (!socket?.connected || free <= 0) return;
    socket.emit('work:request', { slots: free }, (res) => {
      if (!res.ok) { this.update({ lastError: res.error.message }); return; }
      this.accept(res.tasks);
    });
  }

  private accept(tasks: TaskAssignment[]): void {
    if (!this.socket) return;
    this.queue.push(...tasks);
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let task: TaskAssignment | undefined;
      while ((task = this.queue.shift())) {
        if (this.cancelled.delete(task.replicaId)) continue;
        this.running = task;
        this.update({ state: 'working', currentJob: task.jobId });
        // Ask for the next task now, so it arrives while this one runs.
        this.requestWork();
        await this.runOne(task);
        this.running = null;
      }
      if (this.socket) this.update({ state: 'waiting', currentJob: null });
      this.requestWork();
    } finally {
      this.pumping = false;
    }
  }

  private async runOne(task: TaskAssignment): Promise<void> {
    const socket = this.socket;
    const modelUrl = new URL(task.modelUrl, this.opts.serverUrl).toString();
    let outcome: RunOutcome;
    try {
      outcome = await this.opts.runner.run(task, modelUrl);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.update({ tasksFailed: this.status.tasksFailed + 1, lastError: `task failed: ${message}` });
      socket?.emit('task:error', { replicaId: task.replicaId, message: message.slice(0, 2000) }, () => {});
      return;
    }
    if (this.cancelled.delete(task.replicaId) || !socket?.connected || socket !== this.socket) return;
    const res = await new Promise<AckResponse<{ accepted: boolean }>>((resolve) => {
      socket.emit('task:result', {
        replicaId: task.replicaId,
        backend: outcome.backend,
        runMs: outcome.runMs,
        outputs: outcome.outputs.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims, data: t.data })),
      }, resolve);
    });
    if (res.ok) {
      this.update({
        tasksDone: this.status.tasksDone + 1,
        computeMs: this.status.computeMs + outcome.runMs,
        backend: outcome.backend,
      });
    } else {
      this.update({ lastError: `result refused: ${res.error.message}` });
    }
  }

  private update(patch: Partial<LoopStatus>): void {
    Object.assign(this.status, patch);
    this.opts.onStatus?.({ ...this.status });
  }
}
