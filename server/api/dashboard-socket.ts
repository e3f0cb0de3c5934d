/**
 * The researchers' dashboard feed: socket.io namespace `/dashboard` on the app's server. The API key comes
 * in the handshake's `auth`; a bad or missing key is refused before the connection opens. The feed follows
 * the app's event bus (job created, leased, settled, cancelled: the scheduler reports each) and coalesces: a
 * job that changes a thousand times a second is pushed at most once per `flushMs`, the worker list once per
 * `workersMs`, and throughput is sampled every `sampleMs`. It never polls the store for jobs, and what it keeps
 * is bounded: the running jobs, the `keepFinished` most recently finished, and `keepSamples` samples. On servers
 * sharing one database, the others tell which of their jobs changed and, while an admin watches, which workers they
 * hold (`peers`), so any server's dashboard shows the whole network.
 */
import type { Logger } from 'pino';
import type { Namespace, Socket } from 'socket.io';
import {
  type ClassAgreement, DASHBOARD_NAMESPACE, type DashboardClientEvents, type DashboardServerEvents, type JobVerification,
  type ThroughputSample, type VerificationView,
} from '../../shared/dashboard-protocol.js';
import { AppError } from '../../shared/errors.js';
import type { JobView } from '../../shared/protocol.js';
import type { ApiKeys } from '../auth/api-keys.js';
import type { AppEvents } from '../events.js';
import type { JobService } from '../jobs/job-service.js';
import type { Clock } from '../scheduler/clock.js';
import type { ApiKeyRow, Store } from '../store/store.js';
import { DashboardWorkers } from './dashboard-workers.js';
import type { PeerViews } from './peer-views.js';
import type { TabGridIo, WorkerInfo } from './worker-socket.js';

export interface DashboardTiming {
  /** Least time between two pushes of changed jobs. */
  flushMs: number;
  workersMs: number;
  sampleMs: number;
  /** Least time between two recomputations of the verification view (it reads every replica of a job). */
  verifyMs: number;
  /** Samples kept for a dashboard that connects later. */
  keepSamples: number;
  /** Finished jobs the feed keeps following (views, samples, verification); older ones are let go. */
  keepFinished: number;
}

export const DEFAULT_DASHBOARD_TIMING: DashboardTiming = { flushMs: 500, workersMs: 1000, sampleMs: 2000, verifyMs: 3000, keepSamples: 300, keepFinished: 100 };

export interface DashboardDeps {
  io: TabGridIo;
  jobs: JobService;
  keys: ApiKeys;
  store: Store;
  events: AppEvents;
  workers: ReadonlyMap<string, WorkerInfo>;
  clock: Clock;
  log: Logger;
  timing?: Partial<DashboardTiming>;
  /** The other servers on the same database: their workers and their jobs' progress show here too. */
  peers?: PeerViews;
}

interface SocketData { key: ApiKeyRow }
type DashboardNamespace = Namespace<DashboardClientEvents, DashboardServerEvents, Record<string, never>, SocketData>;
type DashboardSocket = Socket<DashboardClientEvents, DashboardServerEvents, Record<string, never>, SocketData>;

const ADMIN_ROOM = 'admin';
const ownerRoom = (owner: string) => `owner:${owner}`;
const RECENT_ERRORS = 5;

/** Per-job replication figures from its replicas. */
export function jobVerification(replicas: ReturnType<Store['replicasOfJob']>): JobVerification {
  const returnedBy = new Map<string, number>();
  let returned = 0;
  let rejected = 0;
  const lost = { expired: 0, failed: 0, released: 0 };
  const errors: { at: number; reason: string }[] = [];
  for (const r of replicas) {
    if (r.status === 'returned' || r.status === 'invalid') {
      returned++;
      returnedBy.set(r.taskId, (returnedBy.get(r.taskId) ?? 0) + 1);
      if (r.status === 'invalid' || r.error) rejected++;
    } else if (r.status === 'expired' || r.status === 'failed' || r.status === 'released') {
      lost[r.status]++;
    }
    if (r.error && r.status !== 'released') errors.push({ at: r.returnedAt ?? r.leasedAt, reason: r.error });
  }
  errors.sort((a, b) => b.at - a.at);
  return {
    returned,
    replicasPerTask: returnedBy.size ? returned / returnedBy.size : null,
    rejected,
    lost,
    recentErrors: errors.slice(0, RECENT_ERRORS),
  };
}

/** Attaches the namespace; its timers end when the HTTP server closes (or on the handle's `stop()`). */
export function attachDashboardSocket(deps: DashboardDeps): { stop(): void } {
  const { io, jobs, keys, store, events, workers, clock, log, peers } = deps;
  const timing = { ...DEFAULT_DASHBOARD_TIMING, ...deps.timing };
  const nsp = io.of(DASHBOARD_NAMESPACE) as unknown as DashboardNamespace;

  /** Latest known done-task counts of jobs, for throughput samples, and each job's owner. */
  const done = new Map<string, number>();
  const owners = new Map<string, string>();
  const running = new Set<string>();
  /** Finished jobs still followed, oldest first. */
  const finished = new Set<string>();
  const samples: ThroughputSample[] = [];
  /** Each job's count in the samples so far: a finished job appears once more, then no longer. */
  const sampled = new Map<string, number>();
  const changed = new Set<string>();
  /** What was last pushed per job, so an unchanged view is not pushed again. */
  const pushed = new Map<string, string>();
  /** Verification figures of finished jobs (they no longer change) and of running ones since they last changed. */
  const verified = new Map<string, JobVerification>();
  const verifyStale = new Set<string>();
  let flushTimer: NodeJS.Timeout | null = null;
  let verification: VerificationView | null = null;
  let verifiedAt = -Infinity;
  let verifyTimer: NodeJS.Timeout | null = null;

  const visibleTo = (key: ApiKeyRow) => (jobId: string) => key.admin || owners.get(jobId) === key.id;

  const forget = (id: string) => {
    for (const m of [done, owners, sampled, pushed, verified]) m.delete(id);
    for (const set of [running, finished, verifyStale, changed]) set.delete(id);
  };

  const track = (id: string, view: JobView, owner: string) => {
    if (!owners.has(id) || done.get(id) !== view.tasks.done || running.has(id) !== (view.status === 'running')) verifyStale.add(id);
    owners.set(id, owner);
    done.set(id, view.tasks.done);
    if (view.status === 'running') {
      running.add(id);
      finished.delete(id);
      return;
    }
    running.delete(id);
    finished.delete(id);
    finished.add(id);
    while (finished.size > timing.keepFinished) forget(finished.values().next().value!);
  };

  const computeVerification = (): VerificationView => {
    const classes: ClassAgreement[] = store.classPairs().map((p) => ({
      ...p, agreement: p.agree + p.disagree ? p.agree / (p.agree + p.disagree) : null,
    }));
    const agree = classes.reduce((a, c) => a + c.agree, 0);
    const disagree = classes.reduce((a, c) => a + c.disagree, 0);
    const perJob: Record<string, JobVerification> = {};
    for (const id of owners.keys()) {
      if (verifyStale.has(id) || !verified.has(id)) verified.set(id, jobVerification(store.replicasOfJob(id)));
      perJob[id] = verified.get(id)!;
    }
    verifyStale.clear();
    return { agreement: agree + disagree ? agree / (agree + disagree) : null, classes, jobs: perJob };
  };

  /** A researcher sees its own jobs' verification; agreement per worker class, like the worker list, is the operator's. */
  const verificationFor = (key: ApiKeyRow, v: VerificationView): VerificationView => {
    const mine = visibleTo(key);
    return { ...v, classes: key.admin ? v.classes : [], jobs: Object.fromEntries(Object.entries(v.jobs).filter(([id]) => mine(id))) };
  };

  const pushVerification = () => {
    verifyTimer = null;
    verifiedAt = clock.now();
    try {
      verification = computeVerification();
    } catch (err) {
      log.error({ err }, 'dashboard verification view failed');
      return;
    }
    for (const s of nsp.sockets.values()) s.emit('dashboard:verification', verificationFor(s.data.key, verification));
  };

  /** At most one recomputation per verifyMs; a change inside the window is picked up at its end. */
  const scheduleVerification = () => {
    if (verifyTimer || nsp.sockets.size === 0) return;
    const wait = Math.max(0, verifiedAt + timing.verifyMs - clock.now());
    verifyTimer = setTimeout(pushVerification, wait);
    verifyTimer.unref();
  };

  const flushJobs = () => {
    flushTimer = null;
    const ids = [...changed];
    changed.clear();
    const byOwner = new Map<string, JobView[]>();
    for (const id of ids) {
      try {
        const row = jobs.get(id, '', true);
        const view = jobs.view(row);
        track(id, view, row.owner);
        const json = JSON.stringify(view);
        if (pushed.get(id) === json) continue;
        pushed.set(id, json);
        byOwner.set(row.owner, [...(byOwner.get(row.owner) ?? []), view]);
      } catch (err) {
        // A job deleted since it changed is simply no longer followed.
        if (err instanceof AppError && err.code === 'NOT_FOUND') forget(id);
        else log.warn({ err, jobId: id }, 'dashboard: job view failed');
      }
    }
    const all = [...byOwner.values()].flat();
    if (all.length) nsp.local.to(ADMIN_ROOM).emit('dashboard:jobs', all);
    for (const [owner, views] of byOwner) nsp.local.to(ownerRoom(owner)).except(ADMIN_ROOM).emit('dashboard:jobs', views);
    scheduleVerification();
  };

  const onJobChanged = (jobId: string) => {
    changed.add(jobId);
    if (!flushTimer) {
      // With no dashboard here, views are made only for the throughput history, which is sampled every sampleMs.
      flushTimer = setTimeout(flushJobs, nsp.sockets.size > 0 ? timing.flushMs : Math.max(timing.flushMs, timing.sampleMs));
      flushTimer.unref();
    }
  };

  const workerList = new DashboardWorkers({
    workers, peers, log, workersMs: timing.workersMs,
    watched: () => nsp.sockets.size > 0,
    adminWatches: () => [...nsp.sockets.values()].some((sock) => sock.data.key.admin),
    push: (list) => nsp.local.to(ADMIN_ROOM).emit('dashboard:workers', list),
  });
  const onWorkersChanged = () => workerList.changed();

  const sample = () => {
    if (running.size === 0 && nsp.sockets.size === 0) return;
    const s: ThroughputSample = { at: clock.now(), done: {} };
    for (const [id, n] of done) {
      if (!running.has(id) && sampled.get(id) === n) continue;
      s.done[id] = n;
      sampled.set(id, n);
    }
    samples.push(s);
    if (samples.length > timing.keepSamples) samples.splice(0, samples.length - timing.keepSamples);
    for (const sock of nsp.sockets.values()) {
      // A key revoked since the socket connected loses its feed within one sample.
      if (!store.findApiKey(sock.data.key.keyHash)) { sock.disconnect(true); continue; }
      const mine = visibleTo(sock.data.key);
      sock.emit('dashboard:sample', { at: s.at, done: Object.fromEntries(Object.entries(s.done).filter(([id]) => mine(id))) });
    }
  };
  const sampler = setInterval(sample, timing.sampleMs);
  sampler.unref();

  nsp.use((socket, next) => {
    const auth = socket.handshake.auth as { key?: unknown } | undefined;
    const key = typeof auth?.key === 'string' ? auth.key.trim() : '';
    const row = key ? keys.verify(key) : undefined;
    if (!row) {
      next(new Error(key ? 'unknown API key' : 'an API key is required'));
      return;
    }
    (socket as DashboardSocket).data.key = row;
    next();
  });

  nsp.on('connection', (socket: DashboardSocket) => {
    const key = socket.data.key;
    void socket.join(key.admin ? ADMIN_ROOM : ownerRoom(key.id));
    try {
      // Its running jobs and the most recent others (newest first), not every job it ever ran.
      const rows = jobs.list(key.id, key.admin);
      const recent = rows.filter((row, i) => row.status === 'running' || i < timing.keepFinished);
      const views = recent.map((row) => {
        const view = jobs.view(row);
        track(row.id, view, row.owner);
        return view;
      });
      const mine = visibleTo(key);
      if (!verification || clock.now() - verifiedAt > timing.verifyMs) {
        verification = computeVerification();
        verifiedAt = clock.now();
      }
      socket.emit('dashboard:snapshot', {
        now: clock.now(),
        scope: key.admin ? 'all' : 'own',
        jobs: views,
        workers: key.admin ? workerList.local() : [],
        samples: samples.map((s) => ({ at: s.at, done: Object.fromEntries(Object.entries(s.done).filter(([id]) => mine(id))) })),
        verification: verificationFor(key, verification),
      });
      // The other servers' workers follow as soon as they have answered.
      if (key.admin && peers) void workerList.all().then((list) => socket.emit('dashboard:workers', list));
    } catch (err) {
      log.error({ err }, 'dashboard snapshot failed');
      socket.disconnect(true);
    }
  });

  const onJobChangedHere = (jobId: string) => {
    peers?.jobChanged(jobId);
    onJobChanged(jobId);
  };
  events.on('job:changed', onJobChangedHere);
  peers?.onJobsChanged((ids) => { for (const id of ids) onJobChanged(id); });
  events.on('worker:joined', onWorkersChanged);
  events.on('worker:left', onWorkersChanged);

  const handle = {
    stop() {
      clearInterval(sampler);
      workerList.stop();
      for (const t of [flushTimer, verifyTimer]) if (t) clearTimeout(t);
      peers?.stop();
      events.off('job:changed', onJobChangedHere);
      events.off('worker:joined', onWorkersChanged);
      events.off('worker:left', onWorkersChanged);
    },
  };
  // The app's stop() closes io and with it the HTTP server: the feed ends with them.
  io.httpServer?.once('close', () => handle.stop());
  return handle;
}
