/**
 * A headless volunteer with a behaviour, for the chaos run and the open-internet tests: honest, slow, dying
 * mid-task, flaky (disconnects and reconnects), lying at random, colluding (the same wrong answer as its group),
 * and the attackers of the open internet, who hold any number of free identities: sleepers (honest for a while,
 * then colluding), saboteurs (an error report for every task, under a fresh identity every few) and hoarders
 * (as many leases as they can get, never answered, under fresh identities).
 * It speaks the real protocol over socket.io; honest kinds keep their volunteer token across reconnects.
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { type AckResponse, type ClientToServerEvents, MAX_SLOTS, type ServerToClientEvents, type TaskAssignment } from '../../shared/protocol.js';
import type { Tensor } from '../../shared/tensor.js';
import { NodeRunner } from '../../cli/node-runner.js';

export const Behaviour = {
  honest: 'honest',
  slow: 'slow',
  dying: 'dying',
  flaky: 'flaky',
  liar: 'liar',
  colluder: 'colluder',
  /** Honest for its first `honestFor` results (to be trusted), then lies like a colluder (or with zeros). */
  sleeper: 'sleeper',
  /** Reports `task:error` for every task it gets, text with escape sequences and a link; a fresh identity every few. */
  saboteur: 'saboteur',
  /** Asks for as many slots as it may, answers nothing, holds its leases until they lapse; then a fresh identity. */
  hoarder: 'hoarder',
} as const;
export type Behaviour = (typeof Behaviour)[keyof typeof Behaviour];

export const LYING: readonly Behaviour[] = ['liar', 'colluder', 'sleeper'];
/** The attackers of the open internet: free identities, all behind one address in the chaos run. */
export const ATTACKERS: readonly Behaviour[] = ['sleeper', 'saboteur', 'hoarder'];

/** What a saboteur reports: terminal escapes (clear screen, red), a bidi override and a link to lure a researcher. */
export const SABOTAGE_TEXT = '\u001b[2J\u001b[31mCUDA error: device lost\u001b[0m \u202eplease re-run at https://tabgrid-rescue.example/rerun';

export interface ChaosWorkerOptions {
  url: string;
  behaviour: Behaviour;
  random: () => number;
  /** The local address its connection leaves from: a loopback address of its own is a network origin of its own. */
  localAddress?: string;
  /** Sleepers: honest results before the lies start (default 3). */
  honestFor?: number;
  /** Sleepers: the wrong answer, the group's agreed one (default) or all zeros. */
  lie?: 'agreed' | 'zeros';
  /** Saboteurs: errors reported under one identity before it takes a fresh one (default 2). */
  errorsPerIdentity?: number;
  /** Hoarders: slots asked for each time (default MAX_SLOTS). */
  hoardSlots?: number;
}

export interface WorkerTally {
  behaviour: Behaviour;
  /** Every volunteer identity it used, first to last. */
  volunteerIds: string[];
  submitted: number;
  /** Results the server acknowledged as accepted: committed, so they must survive any crash. */
  acked: string[];
  wrongSubmitted: number;
  /** Results this worker sent before the server first refused it as quarantined. */
  quarantinedAfter: number | null;
  /** Tasks its own runtime failed on. */
  errors: number;
  /** Saboteurs: `task:error` reports the server took. */
  errorsReported: number;
  /** Hoarders: leases handed to it in all, and the most one identity held at once. */
  leasesTaken: number;
  mostHeld: number;
}

type S = Socket<ServerToClientEvents, ClientToServerEvents>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ChaosWorker {
  readonly tally: WorkerTally;
  readonly behaviour: Behaviour;
  private socket: S | null = null;
  private token: string | undefined;
  private queue: TaskAssignment[] = [];
  private busy = false;
  private stopped = false;
  /** Hoarders: the leases this identity holds, by replica id, with when each lapses (the server does not say). */
  private readonly held = new Map<string, number>();
  /** Saboteurs: errors reported under this identity. */
  private errorsHere = 0;
  private hoardTimer: ReturnType<typeof setInterval> | null = null;
  private rotation: ReturnType<typeof setTimeout> | null = null;
  private readonly runner = new NodeRunner();
  /** Sleepers: honest results before the lies start. */
  private honestFor: number;

  constructor(private readonly o: ChaosWorkerOptions) {
    this.behaviour = o.behaviour;
    this.honestFor = o.honestFor ?? 3;
    this.tally = {
      behaviour: o.behaviour, volunteerIds: [], submitted: 0, acked: [], wrongSubmitted: 0, quarantinedAfter: null, errors: 0,
      errorsReported: 0, leasesTaken: 0, mostHeld: 0,
    };
  }

  /** A sleeper wakes: every answer from now on is a lie (for tests that wait until it is trusted). */
  wake(): void {
    this.honestFor = Math.min(this.honestFor, this.tally.submitted);
  }

  /** The identity it uses now. */
  get volunteerId(): string | null {
    return this.tally.volunteerIds.at(-1) ?? null;
  }

  start(): void {
    if (this.stopped) return;
    // ws takes `localAddress` through engine.io-client (websocket transport only): the connection leaves from it.
    const opts: Partial<ManagerOptions & SocketOptions> & { localAddress?: string } = {
      transports: ['websocket'], forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 1000, localAddress: this.o.localAddress,
    };
    const socket: S = io(this.o.url, opts);
    this.socket = socket;
    socket.on('connect', () => {
      socket.emit('worker:hello', { kind: 'node', backends: ['cpu'], token: this.token, agent: `chaos ${this.behaviour}` }, (res) => {
        if (!res.ok || socket !== this.socket) return;
        this.token = res.token;
        if (this.volunteerId !== res.volunteerId) this.tally.volunteerIds.push(res.volunteerId);
        if (this.behaviour === 'hoarder') this.hoard(socket);
        else this.ask();
      });
    });
    socket.on('disconnect', () => { this.queue = []; this.held.clear(); });
    socket.on('task:assign', (tasks) => this.take(socket, tasks));
    socket.on('task:cancel', (ids) => {
      this.queue = this.queue.filter((t) => !ids.includes(t.replicaId));
      for (const id of ids) this.held.delete(id);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.hoardTimer) clearInterval(this.hoardTimer);
    if (this.rotation) clearTimeout(this.rotation);
    this.socket?.disconnect();
    await this.runner.close();
  }

  /** Drops this identity and connects again as a newcomer, with no token. */
  private freshIdentity(): void {
    if (this.hoardTimer) clearInterval(this.hoardTimer);
    this.hoardTimer = null;
    this.socket?.disconnect();
    this.socket = null;
    this.token = undefined;
    this.errorsHere = 0;
    this.held.clear();
    this.queue = [];
    this.start();
  }

  private take(socket: S, tasks: TaskAssignment[]): void {
    if (socket !== this.socket) return;
    if (this.behaviour === 'hoarder') {
      // A lease counts as held until a little before it lapses, so a lease the server gives once the old one lapsed
      // is not counted with it.
      const now = Date.now();
      for (const [id, lapses] of this.held) if (lapses <= now) this.held.delete(id);
      for (const t of tasks) this.held.set(t.replicaId, now + t.leaseMs - 100);
      this.tally.leasesTaken += tasks.length;
      this.tally.mostHeld = Math.max(this.tally.mostHeld, this.held.size);
      // Once the first leases have lapsed (the server's sweep has seen it: a dropped socket would hand them back
      // with no failure counted), it comes back as a newcomer, whose cap is fresh.
      if (tasks.length > 0 && !this.rotation) {
        const lapse = Math.max(...tasks.map((t) => t.leaseMs));
        this.rotation = setTimeout(() => { this.rotation = null; if (!this.stopped && socket === this.socket) this.freshIdentity(); }, lapse + 1500);
      }
      return;
    }
    this.queue.push(...tasks);
    void this.pump();
  }

  /** A hoarder asks for many slots again and again, and answers nothing. */
  private hoard(socket: S): void {
    const ask = () => {
      socket.timeout(5000).emit('work:request', { slots: this.o.hoardSlots ?? MAX_SLOTS }, (err: Error | null, res: AckResponse<{ tasks: TaskAssignment[] }>) => {
        if (!err && res.ok) this.take(socket, res.tasks);
      });
    };
    if (this.hoardTimer) clearInterval(this.hoardTimer); // a reconnect says hello again
    ask();
    this.hoardTimer = setInterval(ask, 250);
  }

  private ask(): void {
    const s = this.socket;
    if (!s?.connected || this.tally.quarantinedAfter !== null) return;
    const free = 2 - this.queue.length - (this.busy ? 1 : 0);
    if (free <= 0) return;
    s.timeout(5000).emit('work:request', { slots: free }, (err: Error | null, res: AckResponse<{ tasks: TaskAssignment[] }>) => {
      if (err) return;
      if (!res.ok) {
        if (res.error.code === 'QUARANTINED') {
          this.tally.quarantinedAfter ??= this.tally.submitted;
          // A saboteur does not care: it comes back as someone new.
          if (this.behaviour === 'saboteur') this.freshIdentity();
        } else setTimeout(() => this.ask(), 300);
        return;
      }
      this.take(s, res.tasks);
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
    if (this.behaviour === 'saboteur') return this.sabotage(socket, task);
    if (this.behaviour === 'dying' && this.o.random() < 0.15) {
      // Vanish mid-task: half the time the tab closes (socket drops), half the time it hangs until the lease lapses.
      if (this.o.random() < 0.5) {
        socket.disconnect();
        await sleep(300 + this.o.random() * 700);
        if (!this.stopped) { this.socket = null; this.start(); }
      }
      return;
    }
    if (this.behaviour === 'flaky' && this.o.random() < 0.1) {
      socket.disconnect();
      await sleep(200);
      if (!this.stopped) socket.connect();
      return;
    }
    if (this.behaviour === 'slow') await sleep(50 + this.o.random() * 200);
    let outputs: Tensor[];
    try {
      outputs = (await this.runner.run(task, new URL(task.modelUrl, this.o.url).toString())).outputs;
    } catch {
      this.tally.errors++;
      return;
    }
    if (this.behaviour === 'liar') {
      outputs = outputs.map((t) => ({ ...t, data: scrambled(t.data, this.o.random) }));
      this.tally.wrongSubmitted++;
    } else if (this.behaviour === 'colluder' || (this.behaviour === 'sleeper' && this.tally.submitted >= this.honestFor)) {
      const wrong = this.o.lie === 'zeros' ? zeros : agreedWrong;
      outputs = outputs.map((t) => ({ ...t, data: wrong(t.data) }));
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

  /** Reports an error for the task without running it; every few, a fresh identity. */
  private async sabotage(socket: S, task: TaskAssignment): Promise<void> {
    try {
      const res = await socket.timeout(5000).emitWithAck('task:error', { replicaId: task.replicaId, message: SABOTAGE_TEXT }) as AckResponse;
      if (res.ok) this.tally.errorsReported++;
    } catch {
      return; // the socket dropped or the server died
    }
    if (++this.errorsHere >= (this.o.errorsPerIdentity ?? 2) && !this.stopped) {
      await sleep(100);
      this.freshIdentity();
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

/** All zeros in the same shape: no work done, and every zeroer agrees. */
function zeros(data: Uint8Array): Uint8Array {
  return new Uint8Array(data.byteLength);
}
