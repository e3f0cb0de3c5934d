/**
 * A headless volunteer with a behaviour, for the chaos run: honest, slow, dying mid-task, flaky
 * (disconnects and reconnects), lying at random, colluding (the same wrong answer as its group), or
 * colluding after a few honest answers (a sleeper).
 * It speaks the real protocol over socket.io and keeps its volunteer token across reconnects.
 */
import { io, type Socket } from 'socket.io-client';
import type { AckResponse, ClientToServerEvents, ServerToClientEvents, TaskAssignment } from '../../shared/protocol.js';
import type { Tensor } from '../../shared/tensor.js';
import { NodeRunner } from '../../cli/node-runner.js';

export const Behaviour = {
  honest: 'honest',
  slow: 'slow',
  dying: 'dying',
  flaky: 'flaky',
  liar: 'liar',
  colluder: 'colluder',
  /** Colludes like a colluder, after answering its first three tasks honestly (to be vetted first). */
  sleeper: 'sleeper',
} as const;
export type Behaviour = (typeof Behaviour)[keyof typeof Behaviour];

export const LYING: readonly Behaviour[] = ['liar', 'colluder', 'sleeper'];

export interface WorkerTally {
  behaviour: Behaviour;
  volunteerId: string | null;
  submitted: number;
  /** Results the server acknowledged as accepted: committed, so they must survive any crash. */
  acked: string[];
  wrongSubmitted: number;
  /** Results this worker sent before the server first refused it as quarantined. */
  quarantinedAfter: number | null;
  errors: number;
}

type S = Socket<ServerToClientEvents, ClientToServerEvents>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ChaosWorker {
  readonly tally: WorkerTally;
  private socket: S | null = null;
  private token: string | undefined;
  private queue: TaskAssignment[] = [];
  private busy = false;
  private stopped = false;
  private readonly runner = new NodeRunner();

  constructor(private readonly url: string, readonly behaviour: Behaviour, private readonly random: () => number) {
    this.tally = { behaviour, volunteerId: null, submitted: 0, acked: [], wrongSubmitted: 0, quarantinedAfter: null, errors: 0 };
  }

  start(): void {
    if (this.stopped) return;
    const socket: S = io(this.url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 1000 });
    this.socket = socket;
    socket.on('connect', () => {
      socket.emit('worker:hello', { kind: 'node', backends: ['cpu'], token: this.token, agent: `chaos ${this.behaviour}` }, (res) => {
        if (!res.ok) return;
        this.token = res.token;
        this.tally.volunteerId = res.volunteerId;
        this.ask();
      });
    });
    socket.on('disconnect', () => { this.queue = []; });
    socket.on('task:assign', (tasks) => { this.queue.push(...tasks); void this.pump(); });
    socket.on('task:cancel', (ids) => { this.queue = this.queue.filter((t) => !ids.includes(t.replicaId)); });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.socket?.disconnect();
    await this.runner.close();
  }

  private ask(): void {
    const s = this.socket;
    if (!s?.connected || this.tally.quarantinedAfter !== null) return;
    const free = 2 - this.queue.length - (this.busy ? 1 : 0);
    if (free <= 0) return;
    s.timeout(5000).emit('work:request', { slots: free }, (err: Error | null, res: AckResponse<{ tasks: TaskAssignment[] }>) => {
      if (err) return;
      if (!res.ok) {
        if (res.error.code === 'QUARANTINED') this.tally.quarantinedAfter ??= this.tally.submitted;
        else setTimeout(() => this.ask(), 300);
        return;
      }
      this.queue.push(...res.tasks);
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      let task: TaskAssignment | undefined;
      while ((task = this.queue.shift()) && !this.stopped) {
        this.ask();
        await this.work(task);
      }
    } finally {
      this.busy = false;
    }
    this.ask();
  }

  private async work(task: TaskAssignment): Promise<void> {
    const socket = this.socket;
    if (!socket) return;
    if (this.behaviour === 'dying' && this.random() < 0.15) {
      // Vanish mid-task: half the time the tab closes (socket drops), half the time it hangs until the lease lapses.
      if (this.random() < 0.5) {
        socket.disconnect();
        await sleep(300 + this.random() * 700);
        if (!this.stopped) { this.socket = null; this.start(); }
      }
      return;
    }
    if (this.behaviour === 'flaky' && this.random() < 0.1) {
      socket.disconnect();
      await sleep(200);
      if (!this.stopped) socket.connect();
      return;
    }
    if (this.behaviour === 'slow') await sleep(50 + this.random() * 200);
    let outputs: Tensor[];
    try {
      outputs = (await this.runner.run(task, new URL(task.modelUrl, this.url).toString())).outputs;
    } catch {
      this.tally.errors++;
      return;
    }
    if (this.behaviour === 'liar') {
      outputs = outputs.map((t) => ({ ...t, data: scrambled(t.data, this.random) }));
      this.tally.wrongSubmitted++;
    } else if (this.behaviour === 'colluder' || (this.behaviour === 'sleeper' && this.tally.submitted >= 3)) {
      outputs = outputs.map((t) => ({ ...t, data: agreedWrong(t.data) }));
      this.tally.wrongSubmitted++;
    }
    this.tally.submitted++;
    try {
      const res = await socket.timeout(10_000).emitWithAck('task:result', {
        replicaId: task.replicaId, backend: 'cpu', runMs: 1,
        outputs: outputs.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims, data: t.data })),
      }) as AckResponse<{ accepted: boolean }>;
      if (res.ok && res.accepted) this.tally.acked.push(task.replicaId);
    } catch {
      // No ack (the server died or the socket dropped): the result may or may not be committed; not counted.
    }
  }
}

/** Random float32 values in the same shape: a liar that does no work. */
function scrambled(data: Uint8Array, random: () => number): Uint8Array {
  const f = new Float32Array(data.byteLength / 4).map(() => random() * 10 - 5);
  return new Uint8Array(f.buffer);
}

/** A fixed wrong answer derived from the right one, the same for every colluder. */
function agreedWrong(data: Uint8Array): Uint8Array {
  const right = new Float32Array(data.slice().buffer);
  return new Uint8Array(right.map((v) => v * 1.5 + 1).buffer);
}
