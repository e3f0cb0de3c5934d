/**
 * The volunteer's throttle, "use at most N% of my GPU time", done as a duty cycle: after a task that kept
 * the device busy for t ms, rest t * (100 - N) / N ms. Over many tasks the busy fraction is then N%.
 * Resting (rather than slowing each run) is the only lever a page has: a session.run cannot be paused.
 */

export const MIN_THROTTLE = 5;
export const MAX_THROTTLE = 100;

/** Clamps a requested percentage to [MIN_THROTTLE, 100], rounding to a whole percent; NaN means 100. */
export function clampThrottle(percent: number): number {
  if (!Number.isFinite(percent)) return MAX_THROTTLE;
  return Math.min(MAX_THROTTLE, Math.max(MIN_THROTTLE, Math.round(percent)));
}

/** The rest, in ms, owed after `busyMs` of work at `percent`% (0 at 100%). */
export function restAfter(busyMs: number, percent: number): number {
  const n = clampThrottle(percent);
  if (n >= MAX_THROTTLE || busyMs <= 0) return 0;
  return (busyMs * (100 - n)) / n;
}
