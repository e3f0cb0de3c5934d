/**
 * One server among several on one database. Every `tickMs` it says it is alive (a server that the others declared
 * dead stops: it may no longer commit), declares dead the servers silent for `ttlMs` (their slices become free),
 * learns of jobs that started or ended on other servers, gives back the slices it finished, completes jobs whose
 * slices are all finished, and claims slices for its workers while it has too few open tasks in memory. A job's
 * tasks are decided by the one server holding their slice, so the rules on who may run a task hold across servers.
 * Messages between servers (a job changed, a volunteer quarantined) make the others look at once rather than at
 * their next tick.
 */
import type { Logger } from 'pino';
import type { JobStatus } from '../../shared/protocol.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { SlicedLiveStore } from '../state/sliced-live-store.js';
import type { ClaimedSlice } from '../store/pg/pg-claims.js';
import type { OriginShare, OriginUse } from './origin-share.js';
import { SLICE_BATCHES, type TaskRow } from '../store/store.js';

type Later<T> = T | Promise<T>;

/**
 * What the member needs of the claims' SQL (server/store/pg/pg-claims.ts). What a tick asks may be answered later (the
 * server's thread goes on meanwhile); registering and leaving are answered at once.
 */
export interface Claims {
  readonly serverId: string;
  register(url: string | null): void;
  heartbeat(): Later<void>;
  declareDead(ttlMs: number): Later<string[]>;
  peers(): Later<string[]>;
  jobStatuses(ids: string[]): Later<{ id: string; status: JobStatus }[]>;
  claim(jobIds: string[], n: number): Later<ClaimedSlice[]>;
  release(slices: ClaimedSlice[]): Later<void>;
  finish(slices: ClaimedSlice[]): Later<void>;
  finishedRunningJobs(): Later<string[]>;
  leave(): void;
  /** Says what each origin holds here; returns what they hold on the other servers alive. */
  shareOrigins?(mine: OriginUse[]): Later<OriginUse[]>;
}

/** Messages between servers (api/cluster-bus.ts carries them). */
export type ClusterMessage = { kind: 'jobs' } | { kind: 'quarantined'; volunteerId: string };
export interface ClusterBus {
  send(message: ClusterMessage): void;
  onMessage(handler: (message: ClusterMessage) => void): void;
}

export interface ClusterMemberDeps {
  claims: Claims;
  live: SlicedLiveStore;
  scheduler: Scheduler;
  log: Logger;
  tickMs: number;
  ttlMs: number;
  /** The others declared this server dead: it must stop (what it holds is theirs now). */
  fenced(err: Error): void;
  /** Per-origin caps over the whole network: told and learned at each tick. */
  origins?: OriginShare;
  /** Queues the server's own runs of known-answer tasks (server/verify/server-runs.ts). */
  computeCanaries?(tasks: TaskRow[]): void;
}

/** Open tasks a server with workers keeps in memory, at least: a few slices' worth. */
const TARGET_OPEN = 4 * SLICE_BATCHES;

export class ClusterMember {
  private timer: NodeJS.Timeout | null = null;
  private bus: ClusterBus | null = null;
  private peerUrls: string[] = [];
  private ownUrl: string | null = null;
  /** Volunteers whose quarantine came from another server (not to be told back). */
  private readonly heard = new Set<string>();
  private stopped = false;
  private started = false;
  private noWorkersSince: number | null = null;
  /** Set while this server takes in jobs that started or ended elsewhere: their events are not told back. */
  private following = false;
  /** The tick in progress (one at a time: a tick asked for meanwhile runs once it is over). */
  private ticking: Promise<void> | null = null;
  private tickAgain = false;
  /** Slices finished here whose finish the database has not heard yet. */
  private unfinished: ClaimedSlice[] = [];
  /** Slices with no open task left but leases still out, and since when (by `jobId/slice`). */
  private closingSince = new Map<string, number>();

  constructor(private readonly deps: ClusterMemberDeps) {}

  /** The other servers' URLs, as of the last tick. */
  peers(): string[] {
    return this.peerUrls;
  }

  /** This server's URL, as told to the others (null before `start`). */
  get url(): string | null {
    return this.ownUrl;
  }

  setBus(bus: ClusterBus): void {
    this.bus = bus;
    bus.onMessage((m) => {
      if (this.stopped) return;
      if (m.kind === 'quarantined') {
        this.heard.add(m.volunteerId);
        this.deps.live.refreshVolunteer(m.volunteerId);
        this.deps.scheduler.quarantinedElsewhere(m.volunteerId);
      } else void this.tick();
    });
  }

  /** Something here changed that the other servers should look at now (not what this server learned from them). */
  jobsChanged(): void {
    if (!this.following) this.bus?.send({ kind: 'jobs' });
  }

  /** This server quarantined a volunteer: the others withdraw its leases and decide again what it did there. */
  quarantined(volunteerId: string): void {
    if (this.heard.delete(volunteerId)) return;
    this.bus?.send({ kind: 'quarantined', volunteerId });
  }

  /**
   * Says this server is alive from now on (its row exists: the store registers it before anything is written), so
   * a slow start is not taken for a death by the others; it takes no work until `start`.
   */
  keepAlive(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.deps.tickMs);
    this.timer.unref();
  }

  /** Takes part fully: follows jobs, claims work; `url` is this server's, told to the others' workers. Resolves after its first tick. */
  start(url: string): Promise<void> {
    this.deps.claims.register(url);
    this.ownUrl = url;
    this.started = true;
    this.keepAlive();
    return this.tick();
  }

  /** Leaves cleanly: slices given back at once rather than after the time to live. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    try {
      this.deps.claims.leave();
    } catch (err) {
      this.deps.log.warn({ err }, 'could not leave the cluster cleanly; the others will take over after the time to live');
    }
  }

  /** One round of the member's duties (one at a time); resolves when it is over. Exposed for tests. */
  tick(): Promise<void> {
    if (this.ticking) {
      this.tickAgain = true;
      return this.ticking;
    }
    this.ticking = this.round().finally(() => {
      this.ticking = null;
      if (this.tickAgain && !this.stopped) {
        this.tickAgain = false;
        void this.tick();
      }
    });
    return this.ticking;
  }

  private async round(): Promise<void> {
    if (this.stopped) return;
    const { claims, log } = this.deps;
    try {
      await claims.heartbeat();
    } catch (err) {
      if ((err as { code?: string }).code === 'TG001') {
        this.stopped = true;
        if (this.timer) clearInterval(this.timer);
        this.deps.fenced(err as Error);
        return;
      }
      log.warn({ err }, 'cluster heartbeat failed');
      return;
    }
    if (!this.started || this.stopped) return;
    try {
      const dead = await claims.declareDead(this.deps.ttlMs);
      if (dead.length) log.warn({ servers: dead }, 'servers silent past the time to live: their slices are free');
      await this.followJobs();
      await this.finishSlices();
      await this.claimSlices();
      this.peerUrls = await claims.peers();
      const { origins } = this.deps;
      if (origins && claims.shareOrigins) origins.learn(await claims.shareOrigins(origins.mine()));
    } catch (err) {
      log.warn({ err }, 'cluster round failed');
    }
  }

  /** Jobs started or ended on other servers. */
  private async followJobs(): Promise<void> {
    const { claims, live, scheduler } = this.deps;
    const known = live.runningJobs().map((j) => j.id);
    const rows = await claims.jobStatuses(known);
    if (this.stopped) return;
    // Jobs this server took in or let go of while the question was out are as it knows them now.
    const now = new Set(live.runningJobs().map((j) => j.id));
    const running = new Set(rows.filter((r) => r.status === 'running').map((r) => r.id));
    this.following = true;
    try {
      this.applyJobs(known.filter((id) => now.has(id)), running);
    } finally {
      this.following = false;
    }
    for (const id of await claims.finishedRunningJobs()) if (running.has(id)) scheduler.completeIfDone(id);
  }

  private applyJobs(known: string[], running: Set<string>): void {
    const { live, scheduler } = this.deps;
    for (const id of known) {
      if (running.has(id)) continue;
      scheduler.withdrawJob(id);
      const job = live.refreshJob(id);
      if (job) live.forgetJob(job);
    }
    const knownSet = new Set(known);
    for (const id of running) {
      if (knownSet.has(id)) continue;
      const job = live.refreshJob(id);
      if (job?.status !== 'running') continue;
      live.learnJob(job);
      scheduler.jobCreated(job);
    }
  }

  /** Slices with no open task left are finished; with no workers here for a while, the others may have the rest. */
  private async finishSlices(): Promise<void> {
    const { claims, live, scheduler } = this.deps;
    const held = live.heldSlicesList();
    const done = this.closing(held.filter((s) => live.openInSlice(s.jobId, s.slice) === 0));
    // Let go of in memory first (nothing is leased from them while the database hears of it); noted finished there
    // again at the next tick should that fail.
    for (const s of done) live.dropSlice(s.jobId, s.slice);
    const finishing = [...this.unfinished, ...done];
    this.unfinished = finishing;
    if (finishing.length) {
      await claims.finish(finishing);
      this.unfinished = [];
    }
    const now = Date.now();
    if (scheduler.connectedWorkers > 0) { this.noWorkersSince = null; return; }
    this.noWorkersSince ??= now;
    if (now - this.noWorkersSince < this.deps.ttlMs) return;
    const idle = live.heldSlicesList().filter((s) => live.leasesInSlice(s.jobId, s.slice).length === 0);
    if (idle.length === 0) return;
    for (const s of idle) live.dropSlice(s.jobId, s.slice);
    await claims.release(idle);
  }

  /**
   * Of the slices with no open task left, those to finish now: a slice with leases still out (known-answer probes,
   * replicas of tasks settled meanwhile) waits for their results, for the time to live at most; then its leases are
   * withdrawn (written so: a result that crosses is told it was withdrawn, not that it was never leased).
   */
  private closing(empty: ClaimedSlice[]): ClaimedSlice[] {
    const { live, scheduler } = this.deps;
    const now = Date.now();
    const still = new Map<string, number>();
    const done: ClaimedSlice[] = [];
    for (const s of empty) {
      const leases = live.leasesInSlice(s.jobId, s.slice);
      const k = `${s.jobId}/${s.slice}`;
      const since = this.closingSince.get(k) ?? now;
      if (leases.length > 0 && now - since < this.deps.ttlMs) { still.set(k, since); continue; }
      if (leases.length > 0) scheduler.withdrawLeases(leases.map((r) => r.id));
      done.push(s);
    }
    this.closingSince = still;
    return done;
  }

  /** Claims slices while this server's workers could use more open tasks than memory holds. */
  private async claimSlices(): Promise<void> {
    const { claims, live, scheduler } = this.deps;
    if (scheduler.connectedWorkers === 0) return;
    const open = live.wantingCount();
    if (open >= TARGET_OPEN) return;
    const order = live.runningJobs().sort((a, b) => b.priority - a.priority || a.createdAt - b.createdAt).map((j) => j.id);
    const got = await claims.claim(order, Math.ceil((TARGET_OPEN - open) / SLICE_BATCHES));
    const again: TaskRow[] = [];
    const failed: ClaimedSlice[] = [];
    for (const s of got) {
      try {
        again.push(...live.takeSlice(s.jobId, s.slice));
        this.deps.computeCanaries?.(live.unreadyCanariesOfSlice(s.jobId, s.slice));
      } catch (err) {
        // Claimed but not taken in: given back, or it would be this server's in the database and no one's in fact.
        this.deps.log.warn({ err, jobId: s.jobId, slice: s.slice }, 'could not take a claimed slice in; giving it back');
        live.dropSlice(s.jobId, s.slice);
        failed.push(s);
      }
    }
    await claims.release(failed);
    if (got.length === 0) return;
    this.deps.log.debug({ slices: got.length }, 'slices claimed');
    scheduler.decideAgain(again);
  }
}
