/**
 * What the volunteer page (and the widget's frame) exposes as `window.tabgrid`, for people at the console,
 * for browser tests and for the worker-overhead benchmark. Kept apart from main.ts (and free of DOM types)
 * so tests can import the type without the page.
 */
import type { VolunteerStats } from '../../shared/protocol.js';
import type { LoopStatus } from '../net/work-loop.js';
import type { WebGpuProbe } from '../runtime/webgpu-probe.js';
import type { PauseReason } from './pause-rules.js';
import type { RecentError } from './recent-errors.js';

/**
 * The work loop's status (`timing` holds the last task's wallMs, runMs and idleMs and their running totals)
 * plus what the page adds.
 */
export type PageStatus = LoopStatus & {
  /** Whether the volunteer opted in (Start, a remembered choice, or `?autostart=1`) and has not stopped. */
  started: boolean;
  /** Why the current model runs on its backend, e.g. "wasm: 41 ms vs webgpu 2,390 ms on software adapter swiftshader". */
  backendReason?: string;
  /** What the runner is doing besides running, e.g. "timing webgpu on the first task of this model". */
  activity?: string;
  pauseReasons: PauseReason[];
  pauseWhenHidden: boolean;
  /** When the remembered opt-in was given (ms since the epoch); null when none is remembered. */
  consentAt: number | null;
  /** Whether identity and choice survive a reload (storage usable). */
  persistent: boolean;
  /** Verified credit and rank from the server; null until connected. */
  stats: VolunteerStats | null;
  /** Why WebGPU is gone, once its device was lost. */
  gpuLost: string | null;
  /** The embedding site credited with this work (the widget only). */
  site?: string | null;
};

export interface TabgridPage {
  status(): PageStatus;
  /** Same as clicking Start (in the widget: the opt-in button, without the storage access request). */
  start(): void;
  /** Same as clicking Stop: hands every lease back and disconnects at once. */
  stop(): void;
  /** Percent of GPU time to use, 5 to 100. */
  setThrottle(percent: number): void;
  setPauseWhenHidden(on: boolean): void;
  setProfile(profile: { name?: string; team?: string }): Promise<VolunteerStats>;
  device(): WebGpuProbe;
  errors(): RecentError[];
  /** For tests: destroys the WebGPU device as a driver reset would; false when there was none. */
  loseGpuForTest(): Promise<boolean>;
}
