/**
 * Options read from the page URL. `autostart=1` counts as clicking Start (for automation and kiosks);
 * `backend=wasm|webgpu` skips measuring and uses that backend for every model; `throttle=N` sets the
 * share of GPU time (5 to 100) for a volunteer who has not chosen one yet.
 */
import { clampThrottle } from '../net/duty-cycle.js';
import { type Backend, isBackend } from '../runtime/backend-choice.js';

export interface PageOptions {
  autostart: boolean;
  backend?: Backend;
  /** A `backend=` value we do not know, to report rather than silently ignore. */
  unknownBackend?: string;
  throttle?: number;
}

export function readPageOptions(search: string): PageOptions {
  const q = new URLSearchParams(search);
  const autostart = ['1', 'true', 'yes'].includes((q.get('autostart') ?? '').toLowerCase());
  const opts: PageOptions = { autostart };
  const throttle = Number.parseFloat(q.get('throttle') ?? '');
  if (Number.isFinite(throttle)) opts.throttle = clampThrottle(throttle);
  const raw = q.get('backend');
  if (raw === null || raw === '') return opts;
  if (isBackend(raw)) return { ...opts, backend: raw };
  return { ...opts, unknownBackend: raw };
}
