/**
 * The volunteer page: probes the device, then waits for Start (or a remembered opt-in, or `?autostart=1`)
 * before connecting. Composition only: Donation runs the work, the view draws, the leaderboard is polled.
 * `window.tabgrid` exposes the live status for people and tests.
 */
import { probeWebGpu } from '../runtime/webgpu-probe.js';
import { CONSENT_KEY, ConsentStore, usableStorage } from './consent-store.js';
import { Donation, pageApi } from './donation.js';
import { fetchLeaderboard } from './leaderboard.js';
import type { TabgridPage } from './page-api.js';
import { readPageOptions } from './page-options.js';
import { pacedRender } from './render-pacer.js';
import { createTokenStore } from './token-store.js';
import { VolunteerView } from './volunteer-view.js';

declare global {
  interface Window { tabgrid?: TabgridPage }
}

const LEADERBOARD_EVERY_MS = 30_000;

async function main(): Promise<void> {
  const options = readPageOptions(location.search);
  const view = new VolunteerView(document);
  const storage = usableStorage();
  const consent = new ConsentStore(storage, CONSENT_KEY, { throttle: options.throttle ?? 100, pauseWhenHidden: true });
  const remembered = consent.get().consentAt !== null;

  const gpu = await probeWebGpu();
  view.showDevice(gpu, globalThis.crossOriginIsolated, options.backend);
  let shownCredit: number | null = null;
  const redraw = pacedRender(() => {
    const m = donation.snapshot();
    view.render(m);
    // New credit moves this volunteer on the leaderboard: show it now rather than at the next poll.
    if (m.stats && m.stats.credit !== shownCredit) { shownCredit = m.stats.credit; void refreshBoard(); }
  });
  const donation: Donation = new Donation({
    serverUrl: location.origin,
    gpu,
    forced: options.backend,
    tokens: createTokenStore(storage),
    consent,
    doc: document,
    nav: navigator,
    onChange: () => redraw(),
  });
  if (options.unknownBackend) donation.report(`ignored ?backend=${options.unknownBackend}: use wasm or webgpu`);

  view.onStart(() => donation.start());
  view.onStop(() => donation.stop());
  view.onThrottle((n) => donation.setThrottle(n));
  view.onPauseHidden((on) => donation.setPauseWhenHidden(on));
  view.onProfile(async (p) => { await donation.setProfile(p); void refreshBoard(); });
  window.addEventListener('error', (e) => donation.report(`page error: ${e.message}`));
  window.addEventListener('unhandledrejection', (e) => {
    if (donation.claimGpuDebris(e.reason)) { e.preventDefault(); return; }
    donation.report(`page error: ${e.reason instanceof Error ? e.reason.message : String(e.reason)}`);
  });

  async function refreshBoard(): Promise<void> {
    if (document.visibilityState === 'hidden') return;
    try {
      const stats = donation.snapshot().stats;
      view.renderLeaderboard(await fetchLeaderboard(location.origin), { rank: stats?.rank, team: stats?.team });
    } catch {
      // The leaderboard is a nicety: a failed poll leaves the last one shown.
    }
  }

  window.tabgrid = pageApi(donation, gpu);

  await donation.init();
  view.render(donation.snapshot());
  void refreshBoard();
  setInterval(() => void refreshBoard(), LEADERBOARD_EVERY_MS);
  if (options.autostart || remembered) donation.start();
}

main().catch((err: unknown) => {
  console.error('TabGrid volunteer page failed to start', err);
});
