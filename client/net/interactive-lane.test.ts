/**
 * The interactive lane inside a real WorkLoop, against the in-memory server with fake time: a request is answered
 * on its ack with the runner's outputs, is not queued behind a batch task that runs, is dropped when withdrawn
 * before it started, and is refused at once while paused; the hello says `interactive` only for a runner that can.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { InferAnswer, InferRun, InferWarmAnswer } from '../../shared/infer.js';
import type { AckResponse, ClientToServerEvents, ServerToClientEvents, TaskAssignment } from '../../shared/protocol.js';
import type { Socket } from 'socket.io-client';
import { FakeServer } from '../../test/helpers/fake-worker-server.js';
import { type LoopTimers, type RunOutcome, type Runner, WorkLoop } from './work-loop.js';

const timers: LoopTimers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  later: (fn) => queueMicrotask(fn),
};

const HASH = 'a'.repeat(64);

/** Batch tasks take `batchMs` of fake time, interactive requests `inferMs`; both record when they ran. */
class FakeRunner implements Runner {
  readonly batch: { id: string; start: number; end: number }[] = [];
  readonly infer: { id: string; start: number; end: number }[] = [];
  readonly warmed: string[] = [];
  readonly cooled: string[] = [];
  fail = false;
  constructor(private readonly batchMs = 1000, private readonly inferMs = 20) {}
  async run(task: TaskAssignment): Promise<RunOutcome> {
    const start = Date.now();
    await new Promise((r) => setTimeout(r, this.batchMs));
    this.batch.push({ id: task.replicaId, start, end: Date.now() });
    return { outputs: [{ name: 'y', dtype: 'float32', dims: [1], data: new Uint8Array(4) }], runMs: this.batchMs, backend: 'fake' };
  }
  async warmInteractive(modelHash: string): Promise<{ backend: string; warmMs: number }> {
    this.warmed.push(modelHash);
    return { backend: 'fake', warmMs: 5 };
  }
  async runInteractive(req: InferRun): Promise<RunOutcome> {
    const start = Date.now();
    await new Promise((r) => setTimeout(r, this.inferMs));
    this.infer.push({ id: req.requestId, start, end: Date.now() });
    if (this.fail) throw new Error('bad input shape');
    // Echo the first input doubled, so the test can tell the answer is this request's.
    const x = new Float32Array(new Uint8Array(req.inputs[0]!.data as Uint8Array).slice().buffer).map((v) => v * 2);
    return { outputs: [{ name: 'y', dtype: 'float32', dims: [x.length], data: new Uint8Array(x.buffer) }], runMs: this.inferMs * 0.9, backend: 'fake' };
  }
  coolInteractive(modelHash: string): void { this.cooled.push(modelHash); }
}

type Handler = (...args: unknown[]) => void;

/** The in-memory server, tapped so the test can emit `infer:*` to the worker and read what its hello said. */
function setup(runner: Runner = new FakeRunner()) {
  const server = new FakeServer();
  const handlers = new Map<string, Handler[]>();
  const hellos: Record<string, unknown>[] = [];
  const connect = (): Socket<ServerToClientEvents, ClientToServerEvents> => {
    const socket = server.connect();
    const raw = socket as unknown as { on: (e: string, fn: Handler) => unknown; emit: (e: string, ...a: unknown[]) => unknown };
    const on = raw.on.bind(raw);
    const emit = raw.emit.bind(raw);
    raw.on = (e, fn) => { handlers.set(e, [...(handlers.get(e) ?? []), fn]); return on(e, fn); };
    raw.emit = (e, ...a) => { if (e === 'worker:hello') hellos.push(a[0] as Record<string, unknown>); return emit(e, ...a); };
    return socket;
  };
  const loop = new WorkLoop({ serverUrl: 'http://test', hello: { kind: 'node', backends: ['cpu'] }, runner, timers, connect });
  const emit = (event: string, ...args: unknown[]) => { for (const fn of handlers.get(event) ?? []) fn(...args); };
  /** Sends `infer:run` and collects its answer (with the fake time it came at). */
  const run = (requestId: string, values = [1, 2, 3]) => {
    const answer: { res: AckResponse<InferAnswer> | null; at: number } = { res: null, at: -1 };
    const req: InferRun = {
      requestId, modelHash: HASH, modelUrl: `/api/v1/models/${HASH}`,
      inputs: [{ name: 'x', dtype: 'float32', dims: [values.length], data: new Uint8Array(new Float32Array(values).buffer) }],
    };
    emit('infer:run', req, (res: AckResponse<InferAnswer>) => { answer.res = res; answer.at = Date.now(); });
    return answer;
  };
  return { server, loop, emit, run, hellos, handlers };
}

function floats(res: AckResponse<InferAnswer> | null): number[] {
  if (!res?.ok) throw new Error(`no answer: ${JSON.stringify(res)}`);
  const d = res.outputs[0]!.data as Uint8Array;
  return Array.from(new Float32Array(d.slice().buffer));
}

beforeEach(() => { vi.useFakeTimers({ now: 1_000_000 }); });
afterEach(() => { vi.useRealTimers(); });

describe('InteractiveLane', () => {
  it('says interactive in its hello only when the runner can run interactive requests', async () => {
    const a = setup();
    a.loop.start();
    await vi.advanceTimersByTimeAsync(1);
    expect(a.hellos[0]).toMatchObject({ interactive: true });
    a.loop.stop();

    const b = setup({ run: async () => ({ outputs: [], runMs: 0, backend: 'x' }) });
    b.loop.start();
    await vi.advanceTimersByTimeAsync(1);
    expect(b.hellos[0]).not.toHaveProperty('interactive');
    expect(b.handlers.has('infer:run')).toBe(false);
    b.loop.stop();
  });

  it('answers a request on its ack with the runner\'s outputs as binary, and counts it', async () => {
    const runner = new FakeRunner();
    const { loop, run } = setup(runner);
    loop.start();
    await vi.advanceTimersByTimeAsync(1);
    const answer = run('q1', [1, 2, 3]);
    await vi.advanceTimersByTimeAsync(100);
    expect(answer.res).toMatchObject({ ok: true, backend: 'fake', runMs: 18 });
    expect(floats(answer.res)).toEqual([2, 4, 6]);
    expect(answer.res?.ok && answer.res.outputs[0]!.data).toBeInstanceOf(Uint8Array);
    expect(loop.status).toMatchObject({ interactiveServed: 1, interactiveFailed: 0, interactiveWarm: [HASH] });
    loop.stop();
  });

  it('runs a request that comes while a batch task runs at once, not after the batch task', async () => {
    const runner = new FakeRunner(1000, 20);
    const { server, loop, run } = setup(runner);
    server.addTasks(3);
    loop.start();
    await vi.advanceTimersByTimeAsync(100); // r1 runs (until 1000 ms), r2 in hand
    expect(loop.status.state).toBe('working');
    const answer = run('q1');
    const sentAt = Date.now();
    await vi.advanceTimersByTimeAsync(50);
    expect(answer.res?.ok).toBe(true);
    expect(answer.at - sentAt).toBe(20);
    expect(runner.batch).toHaveLength(0); // the batch task is still running
    await vi.advanceTimersByTimeAsync(5_000);
    expect(server.log.results).toEqual(['r1', 'r2', 'r3']);
    loop.stop();
  });

  it('answers RUN_FAILED with the runner\'s message when the run fails', async () => {
    const runner = new FakeRunner();
    runner.fail = true;
    const { loop, run } = setup(runner);
    loop.start();
    await vi.advanceTimersByTimeAsync(1);
    const answer = run('q1');
    await vi.advanceTimersByTimeAsync(100);
    expect(answer.res).toEqual({ ok: false, error: { code: 'RUN_FAILED', message: 'bad input shape' } });
    expect(loop.status).toMatchObject({ interactiveServed: 0, interactiveFailed: 1 });
    loop.stop();
  });

  it('drops a request withdrawn before it started, and still answers the one running', async () => {
    const runner = new FakeRunner(1000, 50);
    const { loop, run, emit } = setup(runner);
    loop.start();
    await vi.advanceTimersByTimeAsync(1);
    const first = run('q1');
    const second = run('q2');
    await vi.advanceTimersByTimeAsync(10); // q1 runs, q2 waits for it
    emit('infer:cancel', 'q2');
    emit('infer:cancel', 'q1'); // already running: its answer may still go
    await vi.advanceTimersByTimeAsync(0);
    expect(second.res).toEqual({ ok: false, error: { code: 'CANCELLED', message: 'withdrawn before it started' } });
    await vi.advanceTimersByTimeAsync(200);
    expect(first.res?.ok).toBe(true);
    expect(runner.infer.map((r) => r.id)).toEqual(['q1']);
    expect(loop.status.interactiveServed).toBe(1);
    loop.stop();
  });

  it('refuses at once while paused, and serves again once resumed', async () => {
    const runner = new FakeRunner(1000, 50);
    const { loop, run } = setup(runner);
    loop.start();
    await vi.advanceTimersByTimeAsync(1);
    const running = run('q1');
    const waiting = run('q2');
    await vi.advanceTimersByTimeAsync(1);
    loop.setPaused(true);
    expect(waiting.res).toEqual({ ok: false, error: { code: 'PAUSED', message: 'this worker paused' } });
    const refused = run('q3');
    expect(refused.res).toMatchObject({ ok: false, error: { code: 'PAUSED' } });
    await vi.advanceTimersByTimeAsync(100);
    expect(running.res?.ok).toBe(true); // it had started: its answer still goes
    expect(runner.infer.map((r) => r.id)).toEqual(['q1']);
    loop.setPaused(false);
    const again = run('q4');
    await vi.advanceTimersByTimeAsync(100);
    expect(again.res?.ok).toBe(true);
    loop.stop();
  });

  it('warms and cools sessions on the server\'s word, and lets them all go on stop', async () => {
    const runner = new FakeRunner();
    const { loop, emit } = setup(runner);
    loop.start();
    await vi.advanceTimersByTimeAsync(1);
    let warm: AckResponse<InferWarmAnswer> | null = null;
    emit('infer:warm', { modelHash: HASH, modelUrl: `/api/v1/models/${HASH}` }, (res: AckResponse<InferWarmAnswer>) => { warm = res; });
    await vi.advanceTimersByTimeAsync(1);
    expect(warm).toEqual({ ok: true, backend: 'fake', warmMs: 5 });
    expect(runner.warmed).toEqual([HASH]);
    expect(loop.status.interactiveWarm).toEqual([HASH]);
    const other = 'b'.repeat(64);
    emit('infer:warm', { modelHash: other, modelUrl: `/api/v1/models/${other}` }, () => {});
    await vi.advanceTimersByTimeAsync(1);
    emit('infer:cool', HASH);
    expect(runner.cooled).toEqual([HASH]);
    expect(loop.status.interactiveWarm).toEqual([other]);
    loop.stop();
    expect(runner.cooled).toEqual([HASH, other]);
    expect(loop.status.interactiveWarm).toEqual([]);
  });

  it('refuses a malformed request with INVALID_PAYLOAD, without running it', async () => {
    const runner = new FakeRunner();
    const { loop, emit } = setup(runner);
    loop.start();
    await vi.advanceTimersByTimeAsync(1);
    let res: AckResponse<InferAnswer> | null = null;
    emit('infer:run', { requestId: 'q1', modelHash: 'not-a-hash', modelUrl: '/m', inputs: [] }, (r: AckResponse<InferAnswer>) => { res = r; });
    expect(res).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
    await vi.advanceTimersByTimeAsync(100);
    expect(runner.infer).toEqual([]);
    loop.stop();
  });
});
