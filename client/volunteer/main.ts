/**
 * The volunteer page: probes the device, then waits for Start (or `?autostart=1`) before connecting.
 * Composition only: the runtime runs models, the work loop talks to the server, the view draws.
 * `window.tabgrid` exposes the live status for people and tests.
 */
import { WorkLoop } from '../net/work-loop.js';
import { Backend } from '../runtime/backend-choice.js';
import { OrtRunner } from '../runtime/ort-runner.js';
import { probeWebGpu } from '../runtime/webgpu-probe.js';
import type { TabgridPage } from './page-api.js';
import { readPageOptions } from './page-options.js';
import { RecentErrors } from './recent-errors.js';
import { createTokenStore } from './token-store.js';
import { VolunteerView } from './volunteer-view.js';

declare global {
  interface Window { tabgrid?: TabgridPage }
}

async function main(): Promise<void> {
  const options = readPageOptions(location.search);
  const view = new VolunteerView(document);
  const errors = new RecentErrors();
  const tokens = createTokenStore();
  let started = false;
  let blocked: string | null = null;
  let backendReason: string | null = null;
  let activity: string | null = null;
  let seen = { error: null as string | null, failed: 0 };

  const gpu = await probeWebGpu();
  view.showDevice(gpu, globalThis.crossOriginIsolated, options.backend);
  const available: Backend[] = gpu.available ? [Backend.webgpu, Backend.wasm] : [Backend.wasm];
  if (options.unknownBackend) errors.add(`ignored ?backend=${options.unknownBackend}: use wasm or webgpu`);
  if (options.backend && !available.includes(options.backend)) {
    blocked = `?backend=${options.backend} asks for a backend this browser lacks (${gpu.problem ?? 'unavailable'})`;
    errors.add(blocked);
  }

  const runner = new OrtRunner({
    available,
    forced: options.backend,
    gpuLabel: gpu.label,
    onChoice: (_model, choice) => { backendReason = choice.reason; render(); },
    onActivity: (message) => { activity = message; render(); },
  });
  const loop = new WorkLoop({
    serverUrl: location.origin,
    hello: {
      kind: 'browser',
      backends: options.backend ? [options.backend] : available,
      adapter: gpu.adapter,
      limits: gpu.limits,
      agent: navigator.userAgent.slice(0, 256),
    },
    token: tokens.get() ?? undefined,
    runner,
    onToken: (token) => tokens.set(token),
    onStatus: (s) => {
      // The loop keeps lastError until the next start; a new message or a new failed task is a new problem.
      if (s.lastError && (s.lastError !== seen.error || s.tasksFailed > seen.failed)) errors.add(s.lastError);
      seen = { error: s.lastError, failed: s.tasksFailed };
      render();
    },
  });

  function render(): void {
    view.render({ status: loop.status, started, blocked, backendReason, activity, errors: errors.list() });
  }
  function start(): void {
    if (started || blocked) return;
    started = true;
    loop.start();
    render();
  }
  function stop(): void {
    started = false;
    activity = null;
    loop.stop();
    render();
  }

  view.onStart(start);
  view.onStop(stop);
  window.addEventListener('error', (e) => { errors.add(`page error: ${e.message}`); render(); });
  window.addEventListener('unhandledrejection', (e) => {
    errors.add(`page error: ${e.reason instanceof Error ? e.reason.message : String(e.reason)}`);
    render();
  });

  window.tabgrid = {
    status: () => ({
      ...loop.status,
      started,
      ...(backendReason ? { backendReason } : {}),
      ...(activity ? { activity } : {}),
    }),
    start,
    stop,
    device: () => gpu,
    errors: () => errors.list(),
  };

  render();
  if (options.autostart) start();
}

main().catch((err: unknown) => {
  console.error('TabGrid volunteer page failed to start', err);
});
