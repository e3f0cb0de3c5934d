/**
 * What the volunteer page exposes as `window.tabgrid`, for people at the console and for browser tests.
 * Kept apart from main.ts (and free of DOM types) so tests can import the type without the page.
 */
import type { LoopStatus } from '../net/work-loop.js';
import type { WebGpuProbe } from '../runtime/webgpu-probe.js';
import type { RecentError } from './recent-errors.js';

export type PageStatus = LoopStatus & {
  /** Whether Start has been pressed (or `?autostart=1` given) and Stop not since. */
  started: boolean;
  /** Why the current model runs on its backend, e.g. "wasm: 41 ms vs webgpu 2,390 ms on software adapter swiftshader". */
  backendReason?: string;
  /** What the runner is doing besides running, e.g. "timing webgpu on the first task of this model". */
  activity?: string;
};

export interface TabgridPage {
  status(): PageStatus;
  /** Same as clicking Start. */
  start(): void;
  /** Same as clicking Stop: disconnects at once. */
  stop(): void;
  device(): WebGpuProbe;
  errors(): RecentError[];
}
