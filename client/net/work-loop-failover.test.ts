/**
 * WorkLoop moving between servers, against in-memory servers that can go away, with fake time: it gives a server
 * up after FAILOVER_ATTEMPTS failed attempts and takes the next in turn with the same token, a lone server is
 * never given up, a refusal does not count, a result for a lease from the server given up is not sent on, and
 * the servers a hello's ack names join the end of the rotation.
 */
import type { Socket } from 'socket.io-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ClientToServerEvents, ServerToClientEvents, TaskAssignment } from '../../shared/protocol.js';
import { FAILOVER_ATTEMPTS, REFUSED_RETRY_MS } from './connection-watch.js';
import { type LoopTimers, type RunOutcome, type Runner, WorkLoop } from './work-loop.js';

const timers: LoopTimers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  later: (fn) => queueMicrotask(fn),
};
/** socket.io's first retry comes after about a second; the fake retries after exactly that. */
const RETRY_MS = 1_000;

type Handler = (...args: unknown[]) => void;

/** One server of the fake network: up or down, refusing or not, and what its hello's ack names. */
class FakeServer {
  up = true;
  refuse = false;
  servers: unknown = undefined;
  tasks: TaskAssignment[] = [];
  readonly hellos: (string | undefined)[] = [];
  readonly results: string[] = [];
  readonly sockets = new Set<FakeSocket>();
  constructor(readonly url: string) {}

  /** Goes away: every connection drops, and socket.io on the worker's side starts retrying. */
  goDown(): void {
    this.up = false;
    for (const s of this.sockets) s.lose();
  }

  answer(event: string, payload: Record<string, unknown>): unknown {
    switch (event) {
      case 'worker:hello':
        this.hellos.push(payload.token as string | undefined);
        return { ok: true, workerId: 'w', volunteerId: 'vol-1', token: (payload.token as string | undefined) ?? `token-from-${this.url}`, ...(this.servers ? { servers: this.servers } : {}) };
      case 'work:request': return { ok: true, tasks: this.tasks.splice(0, payload.slots as number) };
      case 'task:result': this.results.push(payload.replicaId as string); return { ok: true, accepted: true };
      default: return { ok: true };
    }
  }
}

/** Enough of a socket.io client socket for WorkLoop, retrying a lost connection as socket.io does. */
class FakeSocket {
  connected = false;
  active = true;
  private readonly handlers = new Map<string, Handler[]>();
  private retry: ReturnType<typeof setTimeout> | null = null;
  constructor(private readonly server: FakeServer) { queueMicrotask(() => this.attempt()); }

  on(event: string, fn: Handler): this { this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]); return this; }
  emit(event: string, payload: Record<string, unknown>, ack?: (res: unknown) => void): this {
    if (!this.connected) return this;
    const res = this.server.answer(event, payload);
    if (ack) queueMicrotask(() => ack(res));
    return this;
  }
  connect(): this { this.active = true; this.attempt(); return this; }
  disconnect(): this {
    const was = this.connected;
    this.connected = false;
    this.active = false;
    if (this.retry) clearTimeout(this.retry);
    this.server.sockets.delete(this);
    if (was) this.fire('disconnect', 'io client disconnect');
    return this;
  }
  lose(): void {
    this.connected = false;
    this.fire('disconnect', 'transport close');
    this.retry = setTimeout(() => this.attempt(), RETRY_MS);
  }

  private attempt(): void {
    if (!this.active) return;
    if (this.server.up && this.server.refuse) {
      this.active = false;
      this.fire('connect_error', new Error('too many connections from your network'));
    } else if (this.server.up) {
      this.connected = true;
      this.server.sockets.add(this);
      this.fire('connect');
    } else {
      this.fire('connect_error', new Error('xhr poll error'));
      this.retry = setTimeout(() => this.attempt(), RETRY_MS);
    }
  }
  private fire(event: string, ...args: unknown[]): void { for (const fn of this.handlers.get(event) ?? []) fn(...args); }
}

/** A runner that takes `ms` of fake time per task and records what it ran. */
class SlowRunner implements Runner {
  readonly ran: string[] = [];
  constructor(private readonly ms = 100) {}
  async run(task: TaskAssignment): Promise<RunOutcome> {
    await new Promise((r) => setTimeout(r, this.ms));
    this.ran.push(task.replicaId);
    return { outputs: [{ name: 'y', dtype: 'float32', dims: [1], data: new Uint8Array(4) }], runMs: this.ms, backend: 'fake' };
  }
}

const task = (id: string): TaskAssignment => ({ replicaId: id, taskId: id, jobId: 'j', modelHash: 'm', modelUrl: '/models/m', inputs: [], leaseMs: 60_000 });

/** Servers by URL (`http://a` and `http://a/` are one); a URL no server has is one that never answers. */
function network(...urls: string[]) {
  const servers = new Map(urls.map((u) => [new URL(u).href, new FakeServer(u)]));
  const connected: string[] = [];
  const at = (u: string) => {
    const key = new URL(u).href;
    if (!servers.has(key)) servers.set(key, Object.assign(new FakeServer(u), { up: false }));
    return servers.get(key)!;
  };
  const connect = (url: string) => {
    connected.push(url);
    return new FakeSocket(at(url)) as unknown as Socket<ServerToClientEvents, ClientToServerEvents>;
  };
  return { at, connect, connected };
}

function worker(net: ReturnType<typeof network>, urls: string[], runner: Runner = new SlowRunner()) {
  const switches: string[] = [];
  const loop = new WorkLoop({
    serverUrl: urls[0]!, servers: urls.slice(1), hello: { kind: 'node', backends: ['cpu'] }, runner, timers, connect: net.connect,
    onSwitch: (from, to) => switches.push(`${from} -> ${to}`),
  });
  return { loop, switches };
}

beforeEach(() => { vi.useFakeTimers({ now: 1_000_000 }); });
afterEach(() => { vi.useRealTimers(); });

describe('WorkLoop failover', () => {
  it(`gives a server up after ${FAILOVER_ATTEMPTS} failed attempts and works for the next one, with the same token`, async () => {
    const net = network('http://a', 'http://b');
    const { loop, switches } = worker(net, ['http://a', 'http://b']);
    loop.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(loop.status.connected).toBe(true);
    expect(net.at('http://a').hellos).toEqual([undefined]);

    net.at('http://a').goDown();
    await vi.advanceTimersByTimeAsync(RETRY_MS * (FAILOVER_ATTEMPTS - 1) + 10);
    expect(switches).toEqual([]);
    await vi.advanceTimersByTimeAsync(RETRY_MS);
    expect(switches).toEqual(['http://a -> http://b']);
    expect(loop.status.connected).toBe(true);
    expect(net.at('http://b').hellos).toEqual(['token-from-http://a']);

    net.at('http://b').tasks.push(task('r1'));
    net.at('http://b').goDown();
    net.at('http://b').up = true;
    await vi.advanceTimersByTimeAsync(RETRY_MS + 500);
    // Back before it was given up: the worker stays, and works there.
    expect(switches).toHaveLength(1);
    expect(net.at('http://b').results).toEqual(['r1']);
    loop.stop();
  });

  it('takes the servers round robin while none answers, and settles on the first that does', async () => {
    const net = network('http://a', 'http://b', 'http://c');
    for (const u of ['http://a', 'http://b', 'http://c']) net.at(u).up = false;
    const { loop, switches } = worker(net, ['http://a', 'http://b', 'http://c']);
    loop.start();
    await vi.advanceTimersByTimeAsync(RETRY_MS * (FAILOVER_ATTEMPTS - 1) * 3 + 10);
    expect(switches).toEqual(['http://a -> http://b', 'http://b -> http://c', 'http://c -> http://a']);
    net.at('http://b').up = true;
    await vi.advanceTimersByTimeAsync(RETRY_MS * (FAILOVER_ATTEMPTS - 1) * 2 + 10);
    expect(switches.at(-1)).toBe('http://a -> http://b');
    expect(loop.status.connected).toBe(true);
    loop.stop();
  });

  it('never gives up a lone server: it keeps trying it, as before', async () => {
    const net = network('http://a');
    net.at('http://a').up = false;
    const { loop, switches } = worker(net, ['http://a']);
    loop.start();
    await vi.advanceTimersByTimeAsync(RETRY_MS * 10);
    expect(switches).toEqual([]);
    expect(net.connected).toEqual(['http://a']);
    net.at('http://a').up = true;
    await vi.advanceTimersByTimeAsync(RETRY_MS);
    expect(loop.status.connected).toBe(true);
    loop.stop();
  });

  it('does not count a refusal: that server is there, and is asked again later', async () => {
    const net = network('http://a', 'http://b');
    net.at('http://a').refuse = true;
    const { loop, switches } = worker(net, ['http://a', 'http://b']);
    loop.start();
    await vi.advanceTimersByTimeAsync(REFUSED_RETRY_MS * 3 + 10);
    expect(switches).toEqual([]);
    expect(loop.status.lastError).toMatch(/too many connections/);
    net.at('http://a').refuse = false;
    await vi.advanceTimersByTimeAsync(REFUSED_RETRY_MS);
    expect(loop.status.connected).toBe(true);
    expect(net.connected).toEqual(['http://a']);
    loop.stop();
  });

  it('drops a result for a lease from the server given up; the next server gets none of it', async () => {
    const net = network('http://a', 'http://b');
    const runner = new SlowRunner(10_000);
    net.at('http://a').tasks.push(task('a1'), task('a2'));
    net.at('http://b').tasks.push(task('b1'));
    const { loop, switches } = worker(net, ['http://a', 'http://b'], runner);
    loop.start();
    await vi.advanceTimersByTimeAsync(1_000);
    net.at('http://a').goDown();
    await vi.advanceTimersByTimeAsync(RETRY_MS * FAILOVER_ATTEMPTS + 10);
    expect(switches).toEqual(['http://a -> http://b']);
    // a1 finishes while the worker is on b; a2 was dropped with a's connection.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(runner.ran).toEqual(['a1', 'b1']);
    expect(net.at('http://a').results).toEqual([]);
    expect(net.at('http://b').results).toEqual(['b1']);
    loop.stop();
  });

  it('adds the servers a hello\'s ack names to the end of its rotation, and moves to them', async () => {
    const net = network('http://a', 'http://peer');
    net.at('http://a').servers = ['http://peer/', 'http://a/', 'ftp://nowhere', 'http://peer'];
    const { loop, switches } = worker(net, ['http://a']);
    loop.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(loop.servers).toEqual(['http://a', 'http://peer/']);
    net.at('http://a').goDown();
    await vi.advanceTimersByTimeAsync(RETRY_MS * FAILOVER_ATTEMPTS + 10);
    expect(switches).toEqual(['http://a -> http://peer/']);
    expect(net.at('http://peer').hellos).toEqual(['token-from-http://a']);
    loop.stop();
  });
});
