/**
 * The worker side of the protocol, shared by the volunteer page, the widget and the headless Node worker:
 * say hello, keep `slots` tasks in hand (so the next one is there when one finishes), run them one at a
 * time through a Runner, return outputs as binary. It also rests between tasks to honour the throttle,
 * pauses on request (handing its leases back at once) and times every task for the overhead benchmark; interactive
 * requests go to a lane of their own (interactive-lane.ts), results wait for their acknowledgements in an outbox
 * (result-outbox.ts). When its server cannot be reached it moves to the next one it knows of (server-rotation.ts,
 * connection-watch.ts). Uses only socket.io-client and timers: no DOM, no Node APIs.
 */
import type { AckResponse, Profile, TaskAssignment, VolunteerStats } from '../../shared/protocol.js';
import { MAX_THROTTLE, clampThrottle, restAfter } from './duty-cycle.js';
import { InferErrorCode } from '../../shared/infer.js';
import { watchConnection } from './connection-watch.js';
import { InteractiveLane } from './interactive-lane.js';
import { EMPTY_TIMING, type LoopStatus, type LoopTiming, addTimes, countResult } from './loop-status.js';
import { type LoopTimers, systemTimers } from './loop-timers.js';
import { type WorkerSocket, openWorkerSocket } from './open-worker-socket.js';
import { RATE_RETRY_MS, type ResultAck, ResultOutbox, resultMessage } from './result-outbox.js';
import { ServerRotation } from './server-rotation.js';
import { SlotSizer } from './slot-sizer.js';
import type { RunOutcome, WorkLoopOptions } from './work-loop-options.js';
import { withAck } from './with-ack.js';

export type { LoopState, LoopStatus, LoopTiming, TaskTiming } from './loop-status.js';
export type { LoopTimers } from './loop-timers.js';
export type { RunOutcome, Runner, WorkLoopOptions } from './work-loop-options.js';

/** A task in hand is released before resting when it would then finish past this share of its lease. */
const LEASE_SAFETY = 0.75;
const ACK_TIMEOUT_MS = 15_000;

/** A connected worker; `start()` connects and works until `stop()`. */
export class WorkLoop {
  private socket: WorkerSocket | null = null;
  private queue: TaskAssignment[] = [];
  private readonly receivedAt = new Map<string, number>();
  private running: TaskAssignment | null = null;
  /** The task last given to the runner as a prefetch hint. */
  private hinted: string | null = null;
  /** Slots asked for and not yet answered (a work:request, or a result asking for its successor). */
  private asking = 0;
  /** Counts connections: an answer from an earlier one is not counted against `asking`. */
  private epoch = 0;
  private cancelled = new Set<string>();
  private token: string | undefined;
  private pumping = false;
  private helloDone = false;
  private resting = false;
  private wakeRest: (() => void) | null = null;
  /** When the last task was acknowledged (or the rest after it ended); null after a start or pause. */
  private freeSince: number | null = null;
  private readonly timers: LoopTimers;
  private readonly lane: InteractiveLane;
  private readonly rotation: ServerRotation;
  private readonly outbox: ResultOutbox;
  private readonly sizer = new SlotSizer();
  readonly status: LoopStatus;

  constructor(private readonly opts: WorkLoopOptions) {
    this.token = opts.token;
    const rotation = this.rotation = new ServerRotation([opts.serverUrl, ...(opts.servers ?? [])]);
    this.timers = opts.timers ?? systemTimers;
    this.outbox = new ResultOutbox(this.timers, () => this.slots);
    this.status = {
      state: 'idle', connected: false, volunteerId: null, tasksDone: 0, tasksFailed: 0,
      computeMs: 0, currentJob: null, backend: null, lastError: null,
      throttle: clampThrottle(opts.throttle ?? MAX_THROTTLE), paused: false, released: 0, timing: { ...EMPTY_TIMING }, interactiveServed: 0, interactiveFailed: 0, interactiveWarm: [],
    };
    // Interactive requests (`infer:*`) beside the batch tasks: refused at once while paused or stopped.
    this.lane = new InteractiveLane({
      ...opts, get serverUrl() { return rotation.current; }, open: () => this.socket !== null && !this.status.paused, report: (p) => this.update(p), status: this.status,
    });
  }

  /** The servers this worker may work for, in turn order: those it was given, then those servers told it of. */
  get servers(): readonly string[] { return this.rotation.all; }

  /** As configured, or as many as keep this worker busy while its results are acknowledged (slot-sizer.ts). */
  private get slots(): number { return this.opts.slots ?? this.sizer.slots; }

  start(): void {
    if (this.socket) return;
    this.freeSince = null;
    this.asking = 0;
    this.epoch++;
    this.update({ state: this.status.paused ? 'paused' : 'connecting', lastError: null });
    const socket: WorkerSocket = (this.opts.connect ?? ((url) => openWorkerSocket(url, { bind: this.opts.bind })))(this.rotation.current);
    this.socket = socket;
    socket.on('connect', () => this.onConnect(socket));
    socket.on('disconnect', () => {
      // A socket given up for another server has nothing left to say about the one that replaced it.
      if (this.socket && this.socket !== socket) return;
      // The server hands our leases back on disconnect; what we hold is no longer ours, and no ack will come.
      this.dropQueue();
      this.outbox.clear();
      this.asking = 0;
      this.epoch++;
      this.helloDone = false;
      this.update({ connected: false, state: this.socket ? (this.status.paused ? 'paused' : 'connecting') : 'stopped' });
    });
    watchConnection(socket, { timers: this.timers, current: () => socket === this.socket, giveUp: () => this.moveOn(socket), report: (lastError) => this.update({ lastError }) });
    socket.on('task:assign', (tasks) => this.accept(tasks));
    this.lane.attach(socket);
    socket.on('task:cancel', (ids) => {
      for (const id of ids) this.cancelled.add(id);
      this.queue = this.queue.filter((t) => !this.cancelled.has(t.replicaId));
      this.hintNext();
      // The server keeps no demand past a worker's lease cap: a slot a withdrawn task frees is asked for again.
      this.requestWork();
    });
  }

  /** `socket`'s server cannot be reached: on to the next, same token. Leases there went with the connection. */
  private moveOn(socket: WorkerSocket): void {
    if (socket !== this.socket) return;
    const from = this.rotation.current;
    const to = this.rotation.advance();
    if (to === from) return;
    this.opts.onSwitch?.(from, to);
    this.socket = null;
    socket.disconnect();
    this.start();
  }

  /**
   * Stops at once: hands back every lease held (the task in flight included, whose result is then
   * discarded; a running session cannot be interrupted) and disconnects.
   */
  stop(): void {
    const s = this.socket;
    this.releaseHeld(true);
    this.opts.runner.holdPrefetch?.();
    this.lane.close();
    this.socket = null;
    this.helloDone = false;
    this.wakeRest?.();
    s?.disconnect();
    this.update({ state: 'stopped', connected: false, currentJob: null });
  }

  /** Pausing hands back every lease held and asks for no more work until resumed; the connection stays. */
  setPaused(paused: boolean): void {
    if (paused === this.status.paused) return;
    if (paused) {
      // Sent even when nothing is held: a release also clears the demand the server remembers for us.
      this.releaseHeld(true, true);
      this.lane.refuseWaiting(InferErrorCode.PAUSED, 'this worker paused');
      this.freeSince = null;
      this.wakeRest?.();
      this.update({ paused: true, ...(this.socket ? { state: 'paused', currentJob: null } : {}) });
      this.rehint();
    } else {
      this.update({ paused: false, ...(this.socket ? { state: this.status.connected ? 'waiting' : 'connecting' } : {}) });
      this.requestWork();
    }
  }

  /** Sets the throttle (percent of device time); a rest under way is shortened or lengthened to match. */
  setThrottle(percent: number): void {
    this.update({ throttle: clampThrottle(percent) });
    this.wakeRest?.();
    this.rehint();
  }

  /** After a pause or a throttle change: hint afresh, or tell the runner to start nothing early. */
  private rehint(): void {
    this.hinted = null;
    if (this.status.paused || this.status.throttle < MAX_THROTTLE) this.opts.runner.holdPrefetch?.();
    else this.hintNext();
  }

  /** Gives up the task in flight (e.g. its GPU was lost): its lease goes back now and its result is dropped. */
  abandonCurrent(): void {
    if (!this.running) return;
    this.release([this.running.replicaId]);
    this.cancelled.add(this.running.replicaId);
  }

  /** The volunteer's standing (credit, rank); needs a connection. */
  volunteerStats(): Promise<VolunteerStats> {
    return this.ask((s, ack) => s.emit('volunteer:stats', {}, ack));
  }

  /** Sets the display name and team shown on the leaderboard. */
  setProfile(profile: Profile): Promise<VolunteerStats> {
    return this.ask((s, ack) => s.emit('volunteer:profile', profile, ack));
  }

  private ask(send: (s: WorkerSocket, ack: (res: AckResponse<{ stats: VolunteerStats }>) => void) => void): Promise<VolunteerStats> {
    const socket = this.socket;
    if (!socket?.connected || !this.helloDone) return Promise.reject(new Error('not connected to the server'));
    return withAck<{ stats: VolunteerStats }>(this.timers, ACK_TIMEOUT_MS, (ack) => send(socket, ack)).then((res) => res.stats);
  }

  private async onConnect(socket: WorkerSocket): Promise<void> {
    const extras = await this.opts.helloExtras?.().catch(() => ({})) ?? {};
    if (socket !== this.socket || !socket.connected) return;
    socket.emit('worker:hello', { ...this.opts.hello, ...extras, ...this.lane.hello(), token: this.token }, (res) => {
      if (!res.ok) { this.update({ state: 'error', lastError: `server refused hello: ${res.error.message}` }); return; }
      this.token = res.token;
      this.helloDone = true;
      this.rotation.learn(res.servers);
      this.opts.onToken?.(res.token);
      this.update({ connected: true, volunteerId: res.volunteerId, state: this.status.paused ? 'paused' : 'waiting' });
      this.requestWork();
    });
  }

  private requestWork(): void {
    const socket = this.socket;
    const free = this.slots - this.queue.length - (this.running ? 1 : 0) - this.asking;
    if (!socket?.connected || !this.helloDone || this.status.paused || this.resting || free <= 0) return;
    this.asking += free;
    const epoch = this.epoch;
    socket.emit('work:request', { slots: free }, (res) => {
      if (epoch !== this.epoch) return;
      this.asking -= free;
      if (!res.ok) {
        this.update({ lastError: res.error.message });
        if (res.error.code === 'RATE_LIMITED') this.timers.setTimeout(() => { if (epoch === this.epoch) this.requestWork(); }, RATE_RETRY_MS);
        return;
      }
      this.accept(res.tasks);
    });
  }

  private accept(tasks: TaskAssignment[]): void {
    if (tasks.length === 0) return;
    if (!this.socket || this.status.paused) {
      // Pushed while we were pausing: not ours to keep.
      this.release(tasks.map((t) => t.replicaId));
      return;
    }
    const now = this.timers.now();
    for (const t of tasks) this.receivedAt.set(t.replicaId, now);
    this.queue.push(...tasks);
    this.hintNext();
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let task: TaskAssignment | undefined;
      while (this.socket && !this.status.paused && (task = this.queue.shift())) {
        this.receivedAt.delete(task.replicaId);
        if (this.cancelled.delete(task.replicaId)) continue;
        const startedAt = this.timers.now();
        const idleMs = this.freeSince === null ? null : startedAt - this.freeSince;
        this.running = task;
        this.hintNext();
        this.update({ state: 'working', currentJob: task.jobId });
        // Ask for the next task now, so it arrives while this one runs.
        this.requestWork();
        const { busyMs, ranUntil } = await this.runOne(task, startedAt, idleMs);
        this.running = null;
        this.freeSince = this.timers.now();
        await this.rest(busyMs, ranUntil);
      }
      if (this.socket && !this.status.paused) this.update({ state: 'waiting', currentJob: null });
      this.requestWork();
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Rests for the throttle's share after `busyMs` of work that ended at `ranUntil`, rechecking when the
   * throttle changes. The rest counts from the end of the run, so the result's round trip is part of it.
   */
  private async rest(busyMs: number, ranUntil: number): Promise<void> {
    const begin = this.timers.now();
    const owed = () => restAfter(busyMs, this.status.throttle) - (this.timers.now() - ranUntil);
    if (owed() <= 0 || !this.socket || this.status.paused) return;
    this.releaseStale(begin + owed() + busyMs);
    this.resting = true;
    this.update({ state: 'resting' });
    try {
      let left: number;
      while ((left = owed()) > 0 && this.socket && !this.status.paused) {
        await new Promise<void>((resolve) => {
          const timer = this.timers.setTimeout(() => { this.wakeRest = null; resolve(); }, left);
          this.wakeRest = () => { this.timers.clearTimeout(timer); this.wakeRest = null; resolve(); };
        });
      }
    } finally {
      this.resting = false;
      const end = this.timers.now();
      this.addTiming({ restMs: end - begin });
      if (this.freeSince !== null) this.freeSince = end;
    }
  }

  /** Hands back tasks in hand whose lease would run short if they started only after the rest. */
  private releaseStale(expectedFinish: number): void {
    const stale = this.queue.filter((t) => expectedFinish > (this.receivedAt.get(t.replicaId) ?? 0) + t.leaseMs * LEASE_SAFETY);
    if (stale.length === 0) return;
    this.queue = this.queue.filter((t) => !stale.includes(t));
    this.release(stale.map((t) => t.replicaId));
  }

  /**
   * Tells the runner which task comes next while one runs, so it can start it the moment the running one
   * ends. Only at full throttle: with a rest owed between tasks, the next one must not start early.
   */
  private hintNext(): void {
    const next = this.queue[0];
    const { runner } = this.opts;
    if (!runner.prefetch || !next || !this.running || this.status.paused || this.status.throttle < MAX_THROTTLE) return;
    if (this.hinted === next.replicaId) return;
    this.hinted = next.replicaId;
    runner.prefetch(next, new URL(next.modelUrl, this.rotation.current).toString());
  }

  /** Runs one task and reports its result; returns the time spent in the runner and when it ended. */
  private async runOne(task: TaskAssignment, startedAt: number, idleMs: number | null): Promise<{ busyMs: number; ranUntil: number }> {
    const socket = this.socket;
    // The lease lives as long as the connection it was given on: a result from before a reconnect is nobody's.
    const taken = this.epoch;
    const modelUrl = new URL(task.modelUrl, this.rotation.current).toString();
    let outcome: RunOutcome;
    const t0 = this.timers.now();
    try {
      outcome = await this.opts.runner.run(task, modelUrl);
    } catch (err) {
      const ranUntil = this.timers.now();
      const ran = { busyMs: ranUntil - t0, ranUntil };
      this.addTiming({ busyMs: ran.busyMs });
      // A task we already handed back (Stop, pause, a lost GPU) is no longer ours to report on.
      if (this.cancelled.delete(task.replicaId) || socket !== this.socket || taken !== this.epoch) return ran;
      const message = err instanceof Error ? err.message : String(err);
      this.update({ tasksFailed: this.status.tasksFailed + 1, lastError: `task failed: ${message}` });
      socket?.emit('task:error', { replicaId: task.replicaId, message: message.slice(0, 2000) }, () => {});
      return ran;
    }
    const ranUntil = this.timers.now();
    const ran = { busyMs: ranUntil - t0, ranUntil };
    this.addTiming({ busyMs: ran.busyMs });
    if (this.cancelled.delete(task.replicaId) || !socket?.connected || socket !== this.socket || taken !== this.epoch) return ran;
    // Send and move on: the next task runs while the server commits this one (the outbox bounds the results in flight).
    await this.outbox.room();
    if (socket !== this.socket || !socket.connected) return ran;
    // The slot this task held is free now: its result asks for the next task, which comes back on the ack
    // (one round trip per task). Not when a rest is owed: what is asked for then could wait out its lease.
    const next = restAfter(ran.busyMs, this.status.throttle) > 0 || this.status.paused
      ? 0 : Math.max(0, this.slots - this.queue.length - this.asking);
    this.asking += next;
    const epoch = this.epoch;
    const sentMs = this.timers.now() - startedAt;
    this.outbox.post(resultMessage(task.replicaId, outcome, next), (result, ack) => socket.emit('task:result', result, ack),
      () => epoch !== this.epoch || socket !== this.socket,
      (res, ackMs) => {
        this.sizer.observe(ran.busyMs, ackMs);
        this.onResultAck(task, outcome, res, sentMs, idleMs);
        if (epoch !== this.epoch) return;
        this.asking -= next;
        if (res.ok && res.tasks) this.accept(res.tasks);
        else if (next > 0) this.requestWork();
      });
    return ran;
  }

  /** Counts an acknowledged result; its wall time ends when it was sent, not when the ack came back. */
  private onResultAck(task: TaskAssignment, outcome: RunOutcome, res: ResultAck, wallMs: number, idleMs: number | null): void {
    if (!res.ok) this.update({ lastError: `result refused: ${res.error.message}` });
    else this.update(countResult(this.status, { replicaId: task.replicaId, jobId: task.jobId, wallMs, runMs: outcome.runMs, idleMs }, outcome.backend));
  }

  /**
   * Every lease in hand, and the one in flight when `running`, goes back to the server now; with `always`
   * the (possibly empty) release is sent anyway, to cancel the demand the server remembers.
   */
  private releaseHeld(running: boolean, always = false): void {
    const ids = this.queue.map((t) => t.replicaId);
    this.dropQueue();
    if (running && this.running) {
      ids.push(this.running.replicaId);
      this.cancelled.add(this.running.replicaId);
    }
    this.release(ids, always);
  }

  private release(ids: string[], always = false): void {
    if (ids.length === 0 && !always) return;
    const socket = this.socket;
    if (socket?.connected && this.helloDone) socket.emit('task:release', { replicaIds: ids }, () => {});
    if (ids.length) this.update({ released: this.status.released + ids.length });
  }

  private dropQueue(): void { for (const t of this.queue) this.receivedAt.delete(t.replicaId); this.queue = []; }

  private addTiming(patch: Partial<Pick<LoopTiming, 'busyMs' | 'restMs'>>): void { this.update({ timing: addTimes(this.status.timing, patch) }); }

  private update(patch: Partial<LoopStatus>): void {
    Object.assign(this.status, patch);
    this.opts.onStatus?.({ ...this.status });
  }
}
