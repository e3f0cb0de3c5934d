/**
 * One volunteer's donation, shared by the volunteer page and the widget's frame: the runner and the work
 * loop, the remembered choice and settings, the reasons to pause (hidden tab, low battery, a lost GPU)
 * and the volunteer's standing from the server. The pages only draw `snapshot()` and forward clicks.
 */
import { ORT_PATH } from '../../shared/ort-path.js';
import type { VolunteerStats } from '../../shared/protocol.js';
import { type LoopStatus, WorkLoop } from '../net/work-loop.js';
import { Backend } from '../runtime/backend-choice.js';
import { GPU_DEBRIS_WAIT_MS, rejectionText } from '../runtime/gpu-debris.js';
import { cachedModelHashes } from '../runtime/model-cache.js';
import { type PageRunner, WorkerRunner } from '../runtime/worker-runner.js';
import type { WebGpuProbe } from '../runtime/webgpu-probe.js';
import type { ConsentStore, Prefs } from './consent-store.js';
import { type BatteryState, watchBattery, watchVisibility } from './device-watch.js';
import { PauseReason, batteryPause } from './pause-rules.js';
import { type RecentError, RecentErrors } from './recent-errors.js';
import type { PageStatus, TabgridPage } from './page-api.js';
import type { TokenStore } from './token-store.js';

export interface DonationOptions {
  serverUrl: string;
  /** Inside the widget: the server's signed token for the embedding site, sent in the hello so the site is credited too. */
  siteToken?: string | null;
  gpu: WebGpuProbe;
  /** `?backend=`: use this backend for every model without measuring. */
  forced?: Backend;
  tokens: TokenStore;
  consent: ConsentStore;
  doc: Document;
  nav: Navigator;
  /** Called after anything shown has changed. */
  onChange(): void;
}

export interface DonationSnapshot {
  status: LoopStatus;
  /** Whether the volunteer opted in (and has not pressed Stop since). */
  started: boolean;
  /** Set when the page cannot start at all (e.g. `?backend=webgpu` without WebGPU). */
  blocked: string | null;
  backendReason: string | null;
  activity: string | null;
  errors: RecentError[];
  prefs: Prefs;
  /** When the remembered opt-in was given; null when none is remembered. */
  consentAt: number | null;
  /** Whether the choice and the identity survive a reload (storage usable). */
  persistent: boolean;
  pauseReasons: PauseReason[];
  battery: BatteryState | null;
  /** The volunteer's credit and rank, from the server; null until connected. */
  stats: VolunteerStats | null;
  gpuLost: string | null;
}

const STATS_EVERY_MS = 10_000;
/** Credit is granted when a result is verified, which can trail its acknowledgement a little. */
const STATS_AFTER_TASK_MS = 1_000;

export class Donation {
  private readonly errors = new RecentErrors();
  private readonly runner: PageRunner;
  private readonly loop: WorkLoop;
  private readonly reasons = new Set<PauseReason>();
  private started = false;
  private blocked: string | null = null;
  private backendReason: string | null = null;
  private activity: string | null = null;
  private battery: BatteryState | null = null;
  private hidden = false;
  private stats: VolunteerStats | null = null;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  private seen = { error: null as string | null, failed: 0, done: 0, connected: false };

  constructor(private readonly opts: DonationOptions) {
    const { gpu, forced } = opts;
    const available: Backend[] = gpu.available ? [Backend.webgpu, Backend.wasm] : [Backend.wasm];
    if (forced && !available.includes(forced)) {
      this.blocked = `?backend=${forced} asks for a backend this browser lacks (${gpu.problem ?? 'unavailable'})`;
      this.errors.add(this.blocked);
    }
    // onnxruntime runs in a worker: a task never holds this page's main thread (and with it the socket).
    this.runner = new WorkerRunner({ available, forced, gpuLabel: gpu.label, wasmPaths: new URL(ORT_PATH, opts.serverUrl).href }, {
      onChoice: (_model, choice) => { this.backendReason = choice.reason; opts.onChange(); },
      onActivity: (message) => { this.activity = message; opts.onChange(); },
      onDeviceLost: (message) => this.onDeviceLost(message),
      onProblem: (message) => this.report(message),
    });
    const prefs = opts.consent.get();
    this.loop = new WorkLoop({
      serverUrl: opts.serverUrl,
      hello: {
        kind: 'browser',
        backends: forced ? [forced] : available,
        adapter: gpu.adapter,
        // navigator.deviceMemory (GiB, rounded) is Chromium's; it bounds what shard the scheduler sends.
        limits: { ...gpu.limits, ...deviceMemory(opts.nav) },
        agent: opts.nav.userAgent.slice(0, 256),
        ...(opts.siteToken ? { siteToken: opts.siteToken } : {}),
      },
      helloExtras: async () => ({ cached: await cachedModelHashes() }),
      token: opts.tokens.get() ?? undefined,
      throttle: prefs.throttle,
      slots: 3,
      runner: this.runner,
      onToken: (token) => opts.tokens.set(token),
      onStatus: (s) => this.onStatus(s),
    });
  }

  /**
   * Starts watching visibility and the battery; call once. Resolves with the battery's first reading, or
   * after a second if the browser is slow to give one (the page must not wait on it for ever).
   */
  async init(): Promise<void> {
    this.hidden = watchVisibility(this.opts.doc, (hidden) => { this.hidden = hidden; this.applyHidden(); });
    this.applyHidden();
    const apply = (b: BatteryState) => {
      this.battery = b;
      if (b.supported) this.setReason(PauseReason.battery, batteryPause(this.reasons.has(PauseReason.battery), b));
      this.opts.onChange();
    };
    const first = watchBattery(this.opts.nav, apply).then(apply);
    await Promise.race([first, new Promise((r) => setTimeout(r, 1000))]);
  }

  /** The opt-in (a click, a remembered choice, or `?autostart=1`): connects and starts taking work. */
  start(): void {
    if (this.started || this.blocked) return;
    this.started = true;
    const { consent } = this.opts;
    if (consent.get().consentAt === null) consent.remember(consent.get());
    // The runtime (some megabytes of WebAssembly to fetch and compile) loads while the socket connects and the
    // first task comes, not after that task's model has arrived.
    this.runner.warmUp();
    this.loop.start();
    this.statsTimer = setInterval(() => void this.refreshStats(), STATS_EVERY_MS);
    this.opts.onChange();
  }

  /** Stop: every lease goes back now, the connection closes, and the remembered opt-in is forgotten. */
  stop(): void {
    this.started = false;
    this.activity = null;
    this.opts.consent.forget();
    this.loop.stop();
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    this.opts.onChange();
  }

  setThrottle(percent: number): void {
    this.loop.setThrottle(percent);
    this.opts.consent.savePrefs({ throttle: this.loop.status.throttle });
  }

  setPauseWhenHidden(on: boolean): void {
    this.opts.consent.savePrefs({ pauseWhenHidden: on });
    this.applyHidden();
  }

  async setProfile(profile: { name?: string; team?: string }): Promise<VolunteerStats> {
    this.stats = await this.loop.setProfile(profile);
    this.opts.onChange();
    return this.stats;
  }

  /** Storage became usable later (Storage Access API): keep the identity and the choice there from now on. */
  adoptStorage(storage: Storage): void {
    this.opts.tokens.adopt(storage);
    this.opts.consent.adopt(storage);
    this.opts.onChange();
  }

  /** Records a problem to show in the error list. */
  report(message: string): void {
    this.errors.add(message);
    this.opts.onChange();
  }

  /**
   * Takes an unhandled rejection that is onnxruntime-web's leftover from a lost WebGPU device (see
   * gpu-debris.ts) and returns true; the caller then keeps it off the console.
   */
  claimGpuDebris(reason: unknown): boolean {
    const { text, gpuDebris } = rejectionText(reason);
    if (!gpuDebris) return false;
    setTimeout(() => { if (!this.runner.deviceLost) this.report(`page error: ${text}`); }, GPU_DEBRIS_WAIT_MS);
    return true;
  }

  loseGpuForTest(): Promise<boolean> {
    return this.runner.loseDeviceForTest();
  }

  snapshot(): DonationSnapshot {
    const c = this.opts.consent.get();
    return {
      status: { ...this.loop.status },
      started: this.started,
      blocked: this.blocked,
      backendReason: this.backendReason,
      activity: this.activity,
      errors: this.errors.list(),
      prefs: { throttle: c.throttle, pauseWhenHidden: c.pauseWhenHidden },
      consentAt: c.consentAt,
      persistent: this.opts.consent.persistent,
      pauseReasons: [...this.reasons],
      battery: this.battery,
      stats: this.stats,
      gpuLost: this.runner.deviceLost,
    };
  }

  async refreshStats(): Promise<void> {
    if (!this.loop.status.connected) return;
    try {
      this.stats = await this.loop.volunteerStats();
      this.opts.onChange();
    } catch {
      // Disconnected meanwhile; the next connection asks again.
    }
  }

  private onStatus(s: LoopStatus): void {
    // The loop keeps lastError until the next start; a new message or a new failed task is a new problem.
    if (s.lastError && (s.lastError !== this.seen.error || s.tasksFailed > this.seen.failed)) this.errors.add(s.lastError);
    if ((s.connected && !this.seen.connected) || s.tasksDone > this.seen.done) {
      setTimeout(() => void this.refreshStats(), s.tasksDone > this.seen.done ? STATS_AFTER_TASK_MS : 0);
    }
    this.seen = { error: s.lastError, failed: s.tasksFailed, done: s.tasksDone, connected: s.connected };
    this.opts.onChange();
  }

  private onDeviceLost(message: string): void {
    // The task in flight was computing on a device that no longer exists: hand it back now.
    this.loop.abandonCurrent();
    if (this.opts.forced === Backend.webgpu) {
      this.errors.add(`WebGPU device lost (${message}); ?backend=webgpu allows nothing else, so the work is paused. Reload to retry.`);
      this.setReason(PauseReason.gpuLost, true);
    } else {
      this.errors.add(`WebGPU device lost (${message}); the task in flight went back to the queue and work goes on with WebAssembly.`);
    }
    this.opts.onChange();
  }

  private applyHidden(): void {
    this.setReason(PauseReason.hidden, this.hidden && this.opts.consent.get().pauseWhenHidden);
    this.opts.onChange();
  }

  private setReason(reason: PauseReason, on: boolean): void {
    if (on) this.reasons.add(reason); else this.reasons.delete(reason);
    this.loop.setPaused(this.reasons.size > 0);
  }
}

function deviceMemory(nav: Navigator): { deviceMemory?: number } {
  const gib = (nav as Navigator & { deviceMemory?: number }).deviceMemory;
  return typeof gib === 'number' && gib > 0 ? { deviceMemory: gib } : {};
}

/** `window.tabgrid` for a page driven by `donation` (the volunteer page and the widget's frame). */
export function pageApi(donation: Donation, gpu: WebGpuProbe, extra: () => Partial<PageStatus> = () => ({})): TabgridPage {
  return {
    status: () => {
      const m = donation.snapshot();
      return {
        ...m.status,
        started: m.started,
        ...(m.backendReason ? { backendReason: m.backendReason } : {}),
        ...(m.activity ? { activity: m.activity } : {}),
        pauseReasons: m.pauseReasons,
        pauseWhenHidden: m.prefs.pauseWhenHidden,
        consentAt: m.consentAt,
        persistent: m.persistent,
        stats: m.stats,
        gpuLost: m.gpuLost,
        ...extra(),
      };
    },
    start: () => donation.start(),
    stop: () => donation.stop(),
    setThrottle: (n) => donation.setThrottle(n),
    setPauseWhenHidden: (on) => donation.setPauseWhenHidden(on),
    setProfile: (p) => donation.setProfile(p),
    device: () => gpu,
    errors: () => donation.snapshot().errors,
    loseGpuForTest: () => donation.loseGpuForTest(),
  };
}
