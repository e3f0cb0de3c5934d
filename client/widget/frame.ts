/**
 * The widget's frame, served from the TabGrid server and embedded by widget.js on a host page. Nothing runs
 * before the opt-in click. On that click it asks for storage access (a cross-site frame gets no storage
 * otherwise) and starts at once; when storage is refused, identity and choice live in memory for this visit.
 * The site token the loader handed over (the server's signed word for the embedding page) is sent in the
 * hello, so the site is credited too; the embedding site as the browser reports it is what the card shows.
 * `window.tabgrid` is the same API as the volunteer page's. `?backend=wasm|webgpu` is honoured (for tests).
 */
import { probeWebGpu } from '../runtime/webgpu-probe.js';
import { ConsentStore, usableStorage, widgetConsentKey } from '../volunteer/consent-store.js';
import { Donation, pageApi } from '../volunteer/donation.js';
import { fetchLeaderboard } from '../volunteer/leaderboard.js';
import type { TabgridPage } from '../volunteer/page-api.js';
import { readPageOptions } from '../volunteer/page-options.js';
import { pacedRender } from '../volunteer/render-pacer.js';
import { createTokenStore } from '../volunteer/token-store.js';
import { embeddingOrigin, readSiteToken } from './embed-origin.js';
import { FrameView } from './frame-view.js';
import { type FrameMessage, readFrameOptions } from './widget-options.js';

declare global {
  interface Window { tabgrid?: TabgridPage }
}

type StorageAccessDocument = Document & {
  requestStorageAccess?: (types?: { localStorage?: boolean }) => Promise<unknown>;
  hasStorageAccess?: () => Promise<boolean>;
};

/**
 * Asks for unpartitioned storage. Chromium grants localStorage through the handle that
 * `requestStorageAccess({ localStorage: true })` returns; Firefox and Safari ignore the argument and unlock
 * `localStorage` itself. Resolves null when refused (no top-level visit to the server yet, or the user said no).
 */
async function requestStorage(doc: StorageAccessDocument): Promise<Storage | null> {
  if (typeof doc.requestStorageAccess !== 'function') return null;
  try {
    const handle = (await doc.requestStorageAccess({ localStorage: true })) as { localStorage?: Storage } | undefined;
    return usableStorage(() => handle?.localStorage ?? globalThis.localStorage);
  } catch {
    return null;
  }
}

/** Storage access granted on an earlier visit can be taken up again without a click. */
async function storageAlreadyGranted(doc: StorageAccessDocument): Promise<Storage | null> {
  try {
    const state = await navigator.permissions.query({ name: 'storage-access' as PermissionName });
    return state.state === 'granted' ? await requestStorage(doc) : null;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const options = readFrameOptions(location.search);
  const page = readPageOptions(location.search);
  document.documentElement.dataset.theme = options.theme;
  const site = embeddingOrigin([...(location.ancestorOrigins ?? [])], document.referrer, location.origin);
  const doc = document as StorageAccessDocument;
  const storage = usableStorage() ?? await storageAlreadyGranted(doc);
  const consent = new ConsentStore(storage, widgetConsentKey(site), { throttle: options.throttle, pauseWhenHidden: true });
  const remembered = consent.get().consentAt !== null;

  const post = (m: FrameMessage) => {
    // Only the card's size goes to the host page, so any origin may read it.
    if (window.parent !== window) window.parent.postMessage(m, site ?? '*');
  };
  const view = new FrameView(document, (width, height) => post({ type: 'tabgrid:size', width, height }));
  let siteCredit: number | null = null;
  const gpu = await probeWebGpu();
  const redraw = pacedRender(() => view.render(donation.snapshot(), site, siteCredit));
  const donation: Donation = new Donation({
    serverUrl: location.origin, siteToken: readSiteToken(location.hash), gpu, forced: page.backend,
    tokens: createTokenStore(storage), consent, doc: document, nav: navigator,
    onChange: () => redraw(),
  });

  async function refreshSite(): Promise<void> {
    if (!site) return;
    try {
      const board = await fetchLeaderboard(location.origin, 100);
      siteCredit = board.sites.find((s) => s.origin === site)?.credit ?? 0;
      view.render(donation.snapshot(), site, siteCredit);
    } catch {
      // Shown again on the next poll.
    }
  }

  view.optIn.addEventListener('click', () => {
    // Called inside the click: the Storage Access API needs that user gesture.
    const access = storage ? null : requestStorage(doc);
    donation.start();
    void access?.then((granted) => { if (granted) donation.adoptStorage(granted); });
  });
  view.stop.addEventListener('click', () => donation.stop());
  view.throttle.addEventListener('input', () => donation.setThrottle(Number(view.throttle.value)));
  window.addEventListener('error', (e) => donation.report(`page error: ${e.message}`));
  window.addEventListener('unhandledrejection', (e) => {
    if (donation.claimGpuDebris(e.reason)) { e.preventDefault(); return; }
    donation.report(`page error: ${e.reason instanceof Error ? e.reason.message : String(e.reason)}`);
  });

  window.tabgrid = pageApi(donation, gpu, () => ({ site }));

  await donation.init();
  view.render(donation.snapshot(), site, siteCredit);
  setInterval(() => { if (donation.snapshot().started) void refreshSite(); }, 5_000);
  // No `?autostart=` here: any page can frame this address, so only a click or a choice remembered
  // in this frame's own storage may start the work.
  if (remembered) donation.start();
}

main().catch((err: unknown) => {
  console.error('TabGrid widget failed to start', err);
});
