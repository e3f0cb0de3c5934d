/**
 * When a volunteer's tab stops computing on its own: the tab is hidden (default on), the battery runs low,
 * or the GPU went away with WebGPU forced. Each is a reason; the work loop is paused while any holds.
 * Pure rules here; device-watch.ts reads the browser.
 */

export const PauseReason = {
  hidden: 'hidden',
  battery: 'battery',
  gpuLost: 'gpu-lost',
} as const;
export type PauseReason = (typeof PauseReason)[keyof typeof PauseReason];

/** Battery levels (0 to 1): pause below `stopBelow` when discharging, resume at `resumeAt` or on charge. */
export interface BatteryThresholds { stopBelow: number; resumeAt: number }
export const DEFAULT_BATTERY: BatteryThresholds = { stopBelow: 0.2, resumeAt: 0.3 };

export interface BatteryReading { charging: boolean; level: number }

/**
 * Whether to be paused for the battery, given whether we are now. The gap between the two thresholds is
 * the hysteresis: a level hovering around one value does not start and stop the work every minute.
 */
export function batteryPause(pausedNow: boolean, b: BatteryReading, t: BatteryThresholds = DEFAULT_BATTERY): boolean {
  if (b.charging) return false;
  return pausedNow ? b.level < t.resumeAt : b.level < t.stopBelow;
}

const REASON_TEXT: Record<PauseReason, string> = {
  hidden: 'this tab is hidden',
  battery: 'the battery is low',
  'gpu-lost': 'the GPU was lost and WebGPU is forced',
};

/** "Paused: this tab is hidden and the battery is low." */
export function describePause(reasons: readonly PauseReason[]): string | null {
  if (reasons.length === 0) return null;
  const parts = reasons.map((r) => REASON_TEXT[r]);
  const list = parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}` : parts[0];
  return `Paused: ${list}.`;
}
