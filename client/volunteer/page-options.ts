/**
 * Options read from the page URL. `autostart=1` counts as clicking Start (for automation and kiosks);
 * `backend=wasm|webgpu` skips measuring and uses that backend for every model.
 */
import { type Backend, isBackend } from '../runtime/backend-choice.js';

export interface PageOptions {
  autostart: boolean;
  backend?: Backend;
  /** A `backend=` value we do not know, to report rather than silently ignore. */
  unknownBackend?: string;
}

export function readPageOptions(search: string): PageOptions {
  const q = new URLSearchParams(search);
  const autostart = ['1', 'true', 'yes'].includes((q.get('autostart') ?? '').toLowerCase());
  const raw = q.get('backend');
  if (raw === null || raw === '') return { autostart };
  if (isBackend(raw)) return { autostart, backend: raw };
  return { autostart, unknownBackend: raw };
}
