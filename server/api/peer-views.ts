/**
 * What the dashboard and the workers list need of the other servers on one database: which jobs changed there (so a
 * feed here pushes the progress their workers make), how many of each job's tasks their workers hold (a job's view
 * counts them running, wherever it is asked), and which workers are connected to them (asked when an admin looks).
 * Carried by socket.io's server-side events over the Postgres adapter, as the cluster's messages are; what a
 * peer says is parsed, and bounded, before it is used.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { WorkerView } from '../../shared/dashboard-protocol.js';
import { MAX_STAGES } from '../../shared/protocol.js';
import { workerViewSchema } from '../../shared/rest-schemas.js';
import { type TabGridIo, type WorkerInfo, workerView } from './worker-socket.js';

const CHANGED = 'cluster:jobs-changed';
const WORKERS = 'cluster:workers';
const RUNNING = 'cluster:running';
/** Jobs whose running tasks one server tells in one message (the rest are counted where they are held only). */
const MAX_RUNNING_JOBS = 500;
/** Job ids per message; more changed in one window go in several. */
const IDS_PER_MESSAGE = 500;
/** Workers one server lists to the others (a dashboard shows this many per server at most). */
export const MAX_PEER_WORKERS = 10_000;

const changedSchema = z.array(z.string().min(1).max(200)).max(IDS_PER_MESSAGE);
const workersSchema = z.array(workerViewSchema).max(MAX_PEER_WORKERS);
const count = z.number().int().min(0).max(1e9);
const runningSchema = z.object({
  from: z.string().min(1).max(2048),
  /** By job: [stage, tasks running] pairs. */
  jobs: z.record(z.string().min(1).max(200), z.array(z.tuple([count, count])).max(MAX_STAGES))
    .refine((o) => Object.keys(o).length <= MAX_RUNNING_JOBS, `at most ${MAX_RUNNING_JOBS} jobs`),
});
/** Tasks running per stage, by job. */
export type RunningByJob = Map<string, Map<number, number>>;

export interface PeerViews {
  /** This server's URL as its workers' views give it (null until it has started). */
  self(): string | null;
  /** A job changed here: the others hear of it within `everyMs`, with every other job changed meanwhile. */
  jobChanged(jobId: string): void;
  onJobsChanged(handler: (jobIds: string[]) => void): void;
  /**
   * The workers connected to the other servers; a server that does not answer in time (5 s) is left out. Callers
   * meanwhile share the question under way.
   */
  workers(): Promise<WorkerView[]>;
  /** Tasks of the job the other servers' workers hold, by stage, as they last said (within three rounds). */
  runningElsewhere(jobId: string): ReadonlyMap<number, number> | undefined;
  stop(): void;
}

type Ack = (answer: unknown) => void;
type ServerSideIo = {
  serverSideEmit(event: string, ...args: unknown[]): boolean;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
};

export interface PeerViewsDeps {
  io: TabGridIo;
  log: Logger;
  self(): string | null;
  /** This server's own workers, as the others are told them. */
  workers: ReadonlyMap<string, WorkerInfo>;
  /** The tasks this server's workers hold, told to the others every `everyMs` while there are any. */
  running?(): RunningByJob;
  everyMs: number;
}

export function peerViews(deps: PeerViewsDeps): PeerViews {
  const side = deps.io as unknown as ServerSideIo;
  const pending = new Set<string>();
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let asking: Promise<WorkerView[]> | null = null;
  /** What each other server said last of its running tasks, and when. */
  const elsewhere = new Map<string, { at: number; jobs: RunningByJob }>();
  let toldRunning = false;
  const tellRunning = () => {
    const self = deps.self();
    const mine = deps.running?.();
    if (!self || !mine || (mine.size === 0 && !toldRunning)) return;
    // Told once more when none are left, so the others stop counting them at once.
    toldRunning = mine.size > 0;
    const jobs: Record<string, [number, number][]> = {};
    for (const [jobId, stages] of [...mine].slice(0, MAX_RUNNING_JOBS)) jobs[jobId] = [...stages];
    side.serverSideEmit(RUNNING, { from: self, jobs });
  };
  const runningTimer = deps.running ? setInterval(tellRunning, deps.everyMs) : null;
  runningTimer?.unref();

  const send = () => {
    timer = null;
    const ids = [...pending];
    pending.clear();
    for (let i = 0; i < ids.length; i += IDS_PER_MESSAGE) side.serverSideEmit(CHANGED, ids.slice(i, i + IDS_PER_MESSAGE));
  };

  const peers: PeerViews = {
    self: deps.self,
    jobChanged(jobId) {
      if (stopped) return;
      pending.add(jobId);
      if (timer) return;
      timer = setTimeout(send, deps.everyMs);
      timer.unref();
    },
    onJobsChanged(handler) {
      side.on(CHANGED, (raw: unknown) => {
        const ids = changedSchema.safeParse(raw);
        if (!ids.success) { deps.log.warn('malformed job list from another server dropped'); return; }
        handler(ids.data);
      });
    },
    workers() {
      asking ??= new Promise<WorkerView[]>((resolve) => {
        side.serverSideEmit(WORKERS, (err: Error | null, answers: unknown[]) => {
          if (err) deps.log.debug({ err: err.message }, 'workers list: a server did not answer in time');
          const views: WorkerView[] = [];
          for (const raw of answers ?? []) {
            const list = workersSchema.safeParse(raw);
            if (list.success) views.push(...list.data);
            else deps.log.warn('malformed workers list from another server dropped');
          }
          resolve(views);
        });
      }).finally(() => { asking = null; });
      return asking;
    },
    runningElsewhere(jobId) {
      const fresh = Date.now() - 3 * deps.everyMs;
      let sum: Map<number, number> | undefined;
      for (const [from, said] of elsewhere) {
        if (said.at < fresh) { elsewhere.delete(from); continue; }
        for (const [stage, n] of said.jobs.get(jobId) ?? []) (sum ??= new Map()).set(stage, (sum.get(stage) ?? 0) + n);
      }
      return sum;
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      if (runningTimer) clearInterval(runningTimer);
    },
  };
  side.on(RUNNING, (raw: unknown) => {
    const said = runningSchema.safeParse(raw);
    if (!said.success) { deps.log.warn('malformed running counts from another server dropped'); return; }
    const jobs: RunningByJob = new Map(Object.entries(said.data.jobs).map(([id, pairs]) => [id, new Map(pairs)]));
    elsewhere.set(said.data.from, { at: Date.now(), jobs });
  });
  side.on(WORKERS, (ack: unknown) => {
    if (typeof ack !== 'function') return;
    (ack as Ack)(localWorkerViews(deps.workers, peers).slice(0, MAX_PEER_WORKERS));
  });
  return peers;
}

/** This server's workers, each saying the server it is on when there are others (`peers`). */
export function localWorkerViews(workers: ReadonlyMap<string, WorkerInfo>, peers: PeerViews | undefined): WorkerView[] {
  return [...workers.values()].map((w) => workerView(w, peers?.self()));
}

/** This server's workers and the others', oldest connection first. */
export async function networkWorkers(workers: ReadonlyMap<string, WorkerInfo>, peers: PeerViews | undefined): Promise<WorkerView[]> {
  const local = localWorkerViews(workers, peers);
  if (!peers) return local;
  const all = [...local, ...await peers.workers()];
  return all.sort((a, b) => a.connectedAt - b.connectedAt || a.workerId.localeCompare(b.workerId));
}
