/**
 * An in-memory stand-in for the server's side of one worker socket, for WorkLoop unit tests: it leases
 * tasks from a list, remembers unmet demand and pushes to it, takes results and releases, and answers
 * stats. Acks arrive on a microtask, so no (fake) time passes on the wire, unless an ack delay is set.
 */
import type { Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents, TaskAssignment } from '../../shared/protocol.js';

type Handler = (...args: never[]) => void;

export interface FakeServerLog {
  results: string[];
  errors: string[];
  released: string[];
  requests: number[];
}

export class FakeServer {
  readonly log: FakeServerLog = { results: [], errors: [], released: [], requests: [] };
  /** Replica ids leased to the worker and not yet answered or released. */
  readonly leased = new Set<string>();
  private pending: TaskAssignment[] = [];
  private demand = 0;
  private handlers = new Map<string, Handler[]>();
  private readonly issued = new Map<string, TaskAssignment>();
  private next = 0;
  connected = false;
  sockets = 0;
  /** Connection attempts to refuse, as the server's middleware does (too many from one network); socket.io does not retry those. */
  refuse = 0;
  /** Events to answer RATE_LIMITED without handling them, as the server does to a connection over its event rate. */
  rateLimit = 0;
  /** Drops the connection from the server's side (a network blip); the client reconnects at once, as socket.io does. */
  drop: () => void = () => {};

  /** `ackDelayMs`: how long each acknowledgement takes (a result's upload and commit); 0 answers on a microtask. */
  constructor(private readonly leaseMs = 60_000, private readonly ackDelayMs = 0) {}

  /** Adds `n` tasks of job `jobId` and pushes them to unmet demand. */
  addTasks(n: number, jobId = 'job-1'): void {
    for (let i = 0; i < n; i++) {
      const id = `r${++this.next}`;
      this.pending.push({ replicaId: id, taskId: `t${this.next}`, jobId, modelHash: 'm', modelUrl: '/models/m', inputs: [], leaseMs: this.leaseMs });
    }
    if (this.demand > 0 && this.connected) {
      const tasks = this.lease(this.demand);
      this.demand -= tasks.length;
      if (tasks.length) this.fire('task:assign', tasks);
    }
  }

  /** Withdraws leases, as the server does when a task settles elsewhere or its job ends. */
  cancel(ids: string[]): void {
    for (const id of ids) this.leased.delete(id);
    this.fire('task:cancel', ids);
  }

  get remaining(): number {
    return this.pending.length;
  }

  /** The factory to pass as WorkLoopOptions.connect. */
  connect = (): Socket<ServerToClientEvents, ClientToServerEvents> => {
    this.sockets++;
    this.handlers = new Map();
    let active = true;
    const attempt = () => queueMicrotask(() => {
      if (this.refuse > 0) {
        this.refuse--;
        active = false;
        this.fire('connect_error', new Error('too many connections from your network'));
        return;
      }
      active = true;
      this.connected = true;
      this.fire('connect');
    });
    const isConnected = () => this.connected;
    const socket = {
      get connected() { return isConnected(); },
      get active() { return active; },
      connect: () => { attempt(); return socket; },
      on: (event: string, fn: Handler) => {
        this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]);
        return socket;
      },
      emit: (event: string, payload: unknown, ack?: (res: unknown) => void) => {
        const limited = event !== 'worker:hello' && this.rateLimit > 0 && this.rateLimit-- > 0;
        const res = limited ? { ok: false, error: { code: 'RATE_LIMITED', message: 'over 200 events a second; slow down' } } : this.handle(event, payload);
        if (ack && this.ackDelayMs > 0) setTimeout(() => ack(res), this.ackDelayMs);
        else if (ack) queueMicrotask(() => ack(res));
        return socket;
      },
      disconnect: () => {
        this.connected = false;
        this.dropLeases();
        this.fire('disconnect', 'io client disconnect');
        return socket;
      },
    };
    this.drop = () => {
      this.connected = false;
      this.dropLeases();
      this.fire('disconnect', 'transport close');
      attempt();
    };
    attempt();
    return socket as unknown as Socket<ServerToClientEvents, ClientToServerEvents>;
  };

  private handle(event: string, payload: unknown): unknown {
    const p = payload as Record<string, unknown>;
    switch (event) {
      case 'worker:hello':
        return { ok: true, workerId: 'w-1', volunteerId: 'vol-1', token: 'token-token-token-1' };
      case 'work:request': {
        const slots = p.slots as number;
        this.log.requests.push(slots);
        const tasks = this.lease(slots);
        this.demand = slots - tasks.length;
        return { ok: true, tasks };
      }
      case 'task:result': {
        const id = p.replicaId as string;
        const held = this.leased.delete(id);
        this.log.results.push(id);
        if (!held) return { ok: false, error: { code: 'NOT_FOUND', message: 'no such lease' } };
        // As the server: `next` asks for tasks to come back on this ack.
        const next = (p.next as number | undefined) ?? 0;
        if (next === 0) return { ok: true, accepted: true };
        this.log.requests.push(next);
        const tasks = this.lease(next);
        this.demand = next - tasks.length;
        return { ok: true, accepted: true, tasks };
      }
      case 'task:error':
        this.leased.delete(p.replicaId as string);
        this.log.errors.push(p.replicaId as string);
        return { ok: true };
      case 'task:release': {
        const ids = p.replicaIds as string[];
        let released = 0;
        for (const id of ids) if (this.leased.delete(id)) { released++; this.log.released.push(id); this.requeue(id); }
        this.demand = 0;
        return { ok: true, released };
      }
      case 'volunteer:stats':
      case 'volunteer:profile':
        return { ok: true, stats: { volunteerId: 'vol-1', name: (p.name as string) ?? null, team: null, credit: 7, valid: 1, invalid: 0, quarantined: false, rank: 1 } };
      default:
        return { ok: false, error: { code: 'INVALID_PAYLOAD', message: `unknown event ${event}` } };
    }
  }

  private lease(n: number): TaskAssignment[] {
    const tasks = this.pending.splice(0, n);
    for (const t of tasks) { this.leased.add(t.replicaId); this.issued.set(t.replicaId, t); }
    return tasks;
  }

  /** A released task goes back to the front of the queue under a fresh replica id, as on the server. */
  private requeue(id: string): void {
    const t = this.issued.get(id);
    if (t) this.pending.unshift({ ...t, replicaId: `r${++this.next}` });
  }

  private dropLeases(): void {
    this.leased.clear();
    this.demand = 0;
  }

  private fire(event: string, ...args: unknown[]): void {
    for (const fn of this.handlers.get(event) ?? []) (fn as (...a: unknown[]) => void)(...args);
  }
}
