/**
 * The widget's options, from the `<script>` tag's data attributes on the host page:
 * `data-theme="light|dark|auto"`, `data-throttle="5..100"` (the share of GPU time a volunteer starts with),
 * `data-placement="bottom-right|bottom-left|top-right|top-left|inline"`, and `data-backend="wasm|webgpu"`
 * to skip measuring which is faster (a site that wants to keep GPUs out of it, or a test). Unknown values
 * fall back to defaults.
 */
import { clampThrottle } from '../net/duty-cycle.js';
import { type Backend, isBackend } from '../runtime/backend-choice.js';

export const THEMES = ['auto', 'light', 'dark'] as const;
export type Theme = (typeof THEMES)[number];
export const PLACEMENTS = ['bottom-right', 'bottom-left', 'top-right', 'top-left', 'inline'] as const;
export type Placement = (typeof PLACEMENTS)[number];

export interface WidgetOptions { theme: Theme; throttle: number; placement: Placement; backend?: Backend }

export const DEFAULT_WIDGET_THROTTLE = 50;

const oneOf = <T extends string>(list: readonly T[], v: string | undefined, dflt: T): T =>
  (list as readonly string[]).includes(v ?? '') ? (v as T) : dflt;

export function readWidgetOptions(data: Record<string, string | undefined>): WidgetOptions {
  const throttle = Number.parseFloat(data.throttle ?? '');
  return {
    theme: oneOf(THEMES, data.theme, 'auto'),
    throttle: Number.isFinite(throttle) ? clampThrottle(throttle) : DEFAULT_WIDGET_THROTTLE,
    placement: oneOf(PLACEMENTS, data.placement, 'bottom-right'),
    ...(isBackend(data.backend) ? { backend: data.backend } : {}),
  };
}

/**
 * The frame's address on the TabGrid server. The site token (see loader.ts) rides in the fragment, which the
 * browser keeps to itself: it reaches the frame's script but no server log.
 */
export function frameUrl(server: string, o: WidgetOptions, siteToken = ''): string {
  const u = new URL('/widget/frame', server);
  u.searchParams.set('theme', o.theme);
  u.searchParams.set('throttle', String(o.throttle));
  if (o.backend) u.searchParams.set('backend', o.backend);
  if (siteToken) u.hash = new URLSearchParams({ 'site-token': siteToken }).toString();
  return u.href;
}

/** The frame's own reading of its address (the same parameters). */
export function readFrameOptions(search: string): Pick<WidgetOptions, 'theme' | 'throttle'> {
  const q = new URLSearchParams(search);
  const o = readWidgetOptions({ theme: q.get('theme') ?? undefined, throttle: q.get('throttle') ?? undefined });
  return { theme: o.theme, throttle: o.throttle };
}

/** Messages from the frame to the loader (the only ones it listens to). */
export type FrameMessage = { type: 'tabgrid:size'; width: number; height: number };

export function isFrameMessage(d: unknown): d is FrameMessage {
  const m = d as FrameMessage | null;
  return !!m && m.type === 'tabgrid:size' && Number.isFinite(m.height) && Number.isFinite(m.width);
}
