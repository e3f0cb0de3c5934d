/**
 * WorkLoop against an in-memory server with fake time: the throttle's duty cycle (the busy fraction
 * tracks N), pausing and stopping hand leases back at once, a lost task is not reported, and the
 * per-task timing that the overhead benchmark reads.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { TaskAssignment } from '../../shared/protocol.js';
import { FakeServer } from '../../test/helpers/fake-worker-server.js';
import { restAfter } from './duty-cycle.js';
import { type LoopTimers, type RunOutcome, type Runner, WorkLoop } from './work-loop.js';

const timers: LoopTimers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  later: (fn) => queueMicrotask(fn),
};

/** A runner that is busy for `ms(task)` of fake time and records when it was busy. */
class FakeRunner implements Runner {
  readonly spans: { start: number; end: number; id: string }[] = [];
  fail = false;
  constructor(private readonly ms: (t: TaskAssignment) => number) {}
  async run(task: TaskAssignment): Promise<RunOutcome> {
    const start = Date.now();
    const ms = this.ms(task);
    await new Promise((r) => setTimeout(r, ms));
    this.spans.push({ start, end: Date.now(), id: task.replicaId });
    if (this.fail) throw new Error('boom');
    return { outputs: [{ name: 'y', dtype: 'float32', dims: [1], data: new Uint8Array(4) }], runMs: ms * 0.9, backend: 'fake' };
  }
}

function setup(opts: { throttle?: number; ms?: (t: TaskAssignment) => number; leaseMs?: number; ackDelayMs?: number; slots?: number } = {}) {
  const server = new FakeServer(opts.leaseMs, opts.ackDelayMs);
  const runner = new FakeRunner(opts.ms ?? (() => 100));
  const loop = new WorkLoop({ serverUrl: 'http://test', hello: { kind: 'node', backends: ['cpu'] }, runner, timers, throttle: opts.throttle, connect: server.connect, slots: opts.slots });
  return { server, runner, loop };
}

/** Busy time over wall time from the first task's start to the last one's end plus the rest it owed. */
function busyFraction(spans: { start: number; end: number }[], throttle: number): number {
  const busy = spans.reduce((a, s) => a + s.end - s.start, 0);
  const last = spans[spans.length - 1]!;
  const wall = last.end + restAfter(last.end - last.start, throttle) - spans[0]!.start;
  return busy / wall;
}

beforeEach(() => { vi.useFakeTimers({ now: 1_000_000 }); });
afterEach(() => { vi.useRealTimers(); });

describe('WorkLoop connection', () => {
  it('tries again, after a while, a connection the server refused', async () => {
    const { server, runner, loop } = setup();
    server.refuse = 1;
    server.addTasks(2);
    loop.start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(loop.status).toMatchObject({ connected: false, lastError: 'cannot reach server: too many connections from your network' });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(loop.status.connected).toBe(true);
    expect(runner.spans).toHaveLength(2);
    loop.stop();
  });

  it('does not report a task taken on a connection that has since dropped: its lease went with it', async () => {
    const { server, runner, loop } = setup({ ms: () => 100 });
    server.addTasks(1);
    loop.start();
    await vi.advanceTimersByTimeAsync(50);
    expect(runner.spans).toHaveLength(0);
    server.drop();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runner.spans.map((s) => s.id)).toEqual(['r1']);
    expect(loop.status.connected).toBe(true);
    expect(server.log.results).toEqual([]);
    loop.stop();
  });

  it('sends again, a moment later, what the server refused as over its event rate', async () => {
    const { server, runner, loop } = setup({ ms: () => 10 });
    loop.start();
    await vi.advanceTimersByTimeAsync(10);
    server.addTasks(3);
    server.rateLimit = 2; // the first result and the request after it are refused
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runner.spans).toHaveLength(3);
    expect(server.log.results).toEqual(['r1', 'r2', 'r3']);
    expect(loop.status).toMatchObject({ tasksDone: 3 });
    expect(server.remaining).toBe(0);
    loop.stop();
  });
});

describe('WorkLoop throttle (duty cycle)', () => {
  it.each([10, 25, 50, 75, 100])('keeps the busy fraction at N = %i', async (n) => {
    // Task lengths vary (50 to 350 ms) so the rest must follow each task, not an average.
    const { server, runner, loop } = setup({ throttle: n, ms: (t) => 50 + (Number(t.replicaId.slice(1)) * 37) % 300 });
    server.addTasks(30);
    loop.start();
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(runner.spans).toHaveLength(30);
    expect(busyFraction(runner.spans, n)).toBeCloseTo(n / 100, 2);
    // Never two tasks at once, and each rest is what the duty cycle owes (fake timers tick in whole ms).
    for (let i = 1; i < runner.spans.length; i++) {
      const prev = runner.spans[i - 1]!;
      expect(Math.abs(runner.spans[i]!.start - prev.end - restAfter(prev.end - prev.start, n))).toBeLessThanOrEqual(1);
    }
    const owed = runner.spans.reduce((a, s) => a + restAfter(s.end - s.start, n), 0);
    expect(Math.abs(loop.status.timing.restMs - owed)).toBeLessThanOrEqual(runner.spans.length);
    loop.stop();
  });

  it('counts the result\'s round trip as part of the rest, and does not wait for it', async () => {
    const { server, runner, loop } = setup({ throttle: 50, ms: () => 100, ackDelayMs: 30 });
    server.addTasks(10);
    loop.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runner.spans).toHaveLength(10);
    for (let i = 1; i < runner.spans.length; i++) expect(runner.spans[i]!.start - runner.spans[i - 1]!.end).toBe(100);
    expect(busyFraction(runner.spans, 50)).toBeCloseTo(0.5, 2);
    // A task's wall time ends when its result is sent: the 30 ms ack overlaps what comes next.
    expect(loop.status.timing.last!.wallMs).toBe(100);
    loop.stop();
  });

  it('applies a new throttle to the rest already under way', async () => {
    const { server, runner, loop } = setup({ throttle: 10, ms: () => 1000 });
    server.addTasks(2);
    loop.start();
    await vi.advanceTimersByTimeAsync(1000 + 500); // first task done, 500 ms into a 9 s rest
    expect(loop.status.state).toBe('resting');
    loop.setThrottle(100);
    await vi.advanceTimersByTimeAsync(1000);
    expect(runner.spans).toHaveLength(2);
    expect(runner.spans[1]!.start - runner.spans[0]!.end).toBe(500);
    loop.stop();
  });

  it('hands back a task in hand rather than let its lease lapse during a long rest', async () => {
    const { server, runner, loop } = setup({ throttle: 5, ms: () => 2000, leaseMs: 10_000 });
    server.addTasks(3);
    loop.start();
    await vi.advanceTimersByTimeAsync(2100); // first done; 38 s rest owed; the prefetched task's lease is 10 s
    expect(server.log.released).toHaveLength(1);
    expect(loop.status.released).toBe(1);
    await vi.advanceTimersByTimeAsync(200_000);
    expect(runner.spans.length).toBeGreaterThanOrEqual(3);
    expect(server.log.results.length).toBe(runner.spans.length);
    loop.stop();
  });
});

describe('WorkLoop pause and stop', () => {
  it('pausing releases every lease at once (the one in flight too) and resuming asks again', async () => {
    const { server, runner, loop } = setup({ ms: () => 1000 });
    server.addTasks(5);
    loop.start();
    await vi.advanceTimersByTimeAsync(300);
    expect(server.leased.size).toBe(2); // one running, one in hand
    loop.setPaused(true);
    expect(server.leased.size).toBe(0);
    expect(loop.status).toMatchObject({ state: 'paused', paused: true, released: 2 });
    await vi.advanceTimersByTimeAsync(5000);
    // The abandoned run finished but its result was not sent; nothing more was taken.
    expect(runner.spans).toHaveLength(1);
    expect(server.log.results).toEqual([]);
    expect(server.log.errors).toEqual([]);
    loop.setPaused(false);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(server.log.results).toHaveLength(5);
    expect(loop.status.tasksDone).toBe(5);
    loop.stop();
  });

  it('pausing while idle cancels the demand the server remembers, so nothing is pushed', async () => {
    const { server, runner, loop } = setup({ ms: () => 100 });
    loop.start();
    await vi.advanceTimersByTimeAsync(10);
    loop.setPaused(true);
    await vi.advanceTimersByTimeAsync(10);
    server.addTasks(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(server.leased.size).toBe(0);
    expect(runner.spans).toEqual([]);
    loop.setPaused(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(runner.spans).toHaveLength(2);
    loop.stop();
  });

  it('stop releases the task in flight before disconnecting and drops its result', async () => {
    const { server, runner, loop } = setup({ ms: () => 1000 });
    server.addTasks(4);
    loop.start();
    await vi.advanceTimersByTimeAsync(1500);
    loop.stop();
    expect(server.log.released).toHaveLength(2);
    expect(loop.status).toMatchObject({ state: 'stopped', connected: false });
    await vi.advanceTimersByTimeAsync(5000);
    expect(runner.spans).toHaveLength(2);
    expect(server.log.results).toHaveLength(1);
  });

  it('a task abandoned because its device was lost is released, not reported as an error', async () => {
    const { server, runner, loop } = setup({ ms: () => 1000 });
    runner.fail = true;
    server.addTasks(1);
    loop.start();
    await vi.advanceTimersByTimeAsync(500);
    loop.abandonCurrent();
    await vi.advanceTimersByTimeAsync(1000);
    expect(server.log.released).toHaveLength(1);
    expect(server.log.errors).toEqual([]);
    expect(loop.status.tasksFailed).toBe(0);
    loop.stop();
  });
});

describe('WorkLoop timing', () => {
  it('reports wall, run and idle time per task and in total', async () => {
    const { server, loop } = setup({ ms: () => 200 });
    server.addTasks(1);
    loop.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(loop.status.timing.last).toMatchObject({ wallMs: 200, runMs: 180, idleMs: null });
    // The next task arrives 300 ms after the first was acknowledged.
    await vi.advanceTimersByTimeAsync(300);
    server.addTasks(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(loop.status.timing).toMatchObject({ tasks: 2, wallMs: 400, runMs: 360, busyMs: 400, restMs: 0 });
    expect(loop.status.timing.last!.idleMs).toBeGreaterThanOrEqual(300);
    expect(loop.status.timing.idleMs).toBe(loop.status.timing.last!.idleMs);
    loop.stop();
  });

  it('keeps the next task in hand while one runs (slots 2)', async () => {
    const { server, loop } = setup({ ms: () => 200 });
    server.addTasks(3);
    loop.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(server.leased.size).toBe(2);
    expect(server.log.requests[0]).toBe(2);
    loop.stop();
  });

  it('asks again for the slot a withdrawn task frees', async () => {
    const { server, loop } = setup({ ms: () => 200 });
    server.addTasks(3);
    loop.start();
    await vi.advanceTimersByTimeAsync(10);
    const held = [...server.leased];
    expect(held).toHaveLength(2);
    server.cancel([held[1]!]);
    await vi.advanceTimersByTimeAsync(10);
    expect(server.log.requests).toEqual([2, 1]);
    expect(server.leased.size).toBe(2);
    loop.stop();
  });

  it('reads and sets the volunteer profile over the socket', async () => {
    const { loop } = setup();
    await expect(loop.volunteerStats()).rejects.toThrow(/not connected/);
    loop.start();
    await vi.advanceTimersByTimeAsync(1);
    expect((await loop.volunteerStats()).credit).toBe(7);
    expect((await loop.setProfile({ name: 'Ada' })).name).toBe('Ada');
    loop.stop();
  });
});

describe('WorkLoop pipelining', () => {
  it('starts the next task while the last result is being acknowledged, with at most `slots` unacknowledged', async () => {
    const { server, runner, loop } = setup({ ms: () => 100, ackDelayMs: 250, slots: 2 });
    server.addTasks(6);
    loop.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runner.spans).toHaveLength(6);
    // The first two follow each other at once; the third rides on the first result's ack, 250 ms after the
    // first task ended, so it waits what is left of that after the second's 100 ms.
    expect(runner.spans[1]!.start - runner.spans[0]!.end).toBe(0);
    expect(runner.spans[2]!.start - runner.spans[1]!.end).toBe(150);
    // One request for the first two tasks; every later task was asked for by a result, none by work:request.
    expect(server.log.requests).toEqual([2, 1, 1, 1, 1, 1, 1]);
    expect(server.log.results).toHaveLength(6);
    expect(loop.status.tasksDone).toBe(6);
    loop.stop();
  });
});

describe('WorkLoop slots', () => {
  it('told no number, holds as many tasks as keep it busy while results are acknowledged (tiny tasks, slow acks)', async () => {
    const { server, runner, loop } = setup({ ms: () => 10, ackDelayMs: 45 });
    server.addTasks(60);
    loop.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runner.spans).toHaveLength(60);
    // 1 + 45 / 10 rounded up: 6 in hand once it has measured, so past the first tasks none waits for an ack.
    const gaps = runner.spans.slice(20).map((s, i) => s.start - runner.spans[19 + i]!.end);
    expect(gaps.every((g) => g === 0)).toBe(true);
    expect(Math.max(...server.log.requests)).toBeLessThanOrEqual(6);
    loop.stop();

    // Tasks longer than their acknowledgement keep two in hand, as a worker told 2 does.
    const slow = setup({ ms: () => 100, ackDelayMs: 45 });
    slow.server.addTasks(10);
    slow.loop.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(slow.runner.spans).toHaveLength(10);
    expect(Math.max(...slow.server.log.requests)).toBe(2);
    slow.loop.stop();
  });
});

describe('WorkLoop prefetch hints', () => {
  /** A runner that records the hints it gets. */
  class HintedRunner extends FakeRunner {
    readonly hints: string[] = [];
    holds = 0;
    prefetch(task: TaskAssignment): void { this.hints.push(task.replicaId); }
    holdPrefetch(): void { this.holds++; }
  }
  const hinted = (opts: { throttle?: number } = {}) => {
    const server = new FakeServer();
    const runner = new HintedRunner(() => 100);
    const loop = new WorkLoop({ serverUrl: 'http://test', hello: { kind: 'node', backends: ['cpu'] }, runner, timers, throttle: opts.throttle, connect: server.connect });
    return { server, runner, loop };
  };

  it('names the task in hand as next while one runs, once each', async () => {
    const { server, runner, loop } = hinted();
    server.addTasks(4);
    loop.start();
    await vi.advanceTimersByTimeAsync(50);
    expect(runner.spans).toHaveLength(0);
    expect(runner.hints).toEqual(['r2']); // r1 runs, r2 is in hand
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runner.spans.map((s) => s.id)).toEqual(['r1', 'r2', 'r3', 'r4']);
    expect(runner.hints).toEqual(['r2', 'r3', 'r4']);
    loop.stop();
  });

  it('gives no hint when a rest is owed between tasks, and holds the runner on a pause or a lower throttle', async () => {
    const slow = hinted({ throttle: 50 });
    slow.server.addTasks(3);
    slow.loop.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(slow.runner.spans).toHaveLength(3);
    expect(slow.runner.hints).toEqual([]);
    slow.loop.stop();

    const { server, runner, loop } = hinted();
    server.addTasks(10);
    loop.start();
    await vi.advanceTimersByTimeAsync(50);
    expect(runner.hints).toEqual(['r2']);
    loop.setThrottle(40);
    expect(runner.holds).toBe(1);
    loop.setThrottle(100);
    expect(runner.hints).toEqual(['r2', 'r2']); // named again once it may start early again
    loop.setPaused(true);
    expect(runner.holds).toBe(2);
    loop.stop();
  });
});
