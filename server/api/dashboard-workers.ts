/**
 * The workers list of the admins' dashboards on one server: pushed when a worker joins or leaves here (at most once per
 * `workersMs`), and, with `peers` (servers sharing one database), asked of the other servers every `workersMs` while an
 * admin watches, since their workers come and go unseen here. A list is pushed only when it changed, one push at a time.
 */
import type { Logger } from 'pino';
import type { WorkerView } from '../../shared/dashboard-protocol.js';
import { type PeerViews, localWorkerViews, networkWorkers } from './peer-views.js';
import type { WorkerInfo } from './worker-socket.js';

export interface DashboardWorkersDeps {
  workers: ReadonlyMap<string, WorkerInfo>;
  peers?: PeerViews;
  log: Logger;
  workersMs: number;
  /** Whether any dashboard is connected here, and whether an admin's is. */
  watched(): boolean;
  adminWatches(): boolean;
  /** Sends the list to the admins connected here. */
  push(list: WorkerView[]): void;
}

export class DashboardWorkers {
  private changedTimer: NodeJS.Timeout | null = null;
  private readonly peerTimer: NodeJS.Timeout | null;
  /** The list last pushed, and whether a push (which may wait on the other servers) is under way. */
  private pushed = '';
  private pushing = false;

  constructor(private readonly deps: DashboardWorkersDeps) {
    this.peerTimer = deps.peers ? setInterval(() => { if (!this.changedTimer && deps.adminWatches()) void this.pushNow(); }, deps.workersMs) : null;
    this.peerTimer?.unref();
  }

  /** This server's workers, each saying the server it is on when there are others. */
  local(): WorkerView[] {
    return localWorkerViews(this.deps.workers, this.deps.peers);
  }

  /** This server's workers and the others'. */
  all(): Promise<WorkerView[]> {
    return networkWorkers(this.deps.workers, this.deps.peers);
  }

  /** A worker joined or left here. */
  changed(): void {
    if (this.changedTimer || !this.deps.watched()) return;
    this.changedTimer = setTimeout(() => void this.pushNow(), this.deps.workersMs);
    this.changedTimer.unref();
  }

  stop(): void {
    if (this.peerTimer) clearInterval(this.peerTimer);
    if (this.changedTimer) clearTimeout(this.changedTimer);
    this.changedTimer = null;
  }

  private async pushNow(): Promise<void> {
    this.changedTimer = null;
    if (this.pushing) return;
    this.pushing = true;
    try {
      const list = await this.all();
      const json = JSON.stringify(list);
      if (json !== this.pushed) {
        this.pushed = json;
        this.deps.push(list);
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'dashboard: workers list failed');
    } finally {
      this.pushing = false;
    }
  }
}
