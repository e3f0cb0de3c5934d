/**
 * widget.js: the one line a site owner adds, `<script src="https://SERVER/widget.js" async></script>`.
 * It puts a small card on the page: an iframe served from the TabGrid server, so the host page can neither
 * read nor alter the compute, and the host's CSP or isolation headers do not apply inside it. The card asks
 * for opt-in; nothing runs before the click.
 *
 * Rules for this file, because it runs inside someone else's page: one global name (`TabGrid`), never a
 * thrown error, no inline `<style>` or style attributes (a strict host CSP would block them: styles are set
 * through the CSSOM), and a closed shadow root so the host's CSS cannot reach the card.
 */
import { type Placement, type WidgetOptions, frameUrl, isFrameMessage, readWidgetOptions } from './widget-options.js';

interface TabGridNamespace { readonly version: string; readonly server: string }

/**
 * The server writes a token here for the page that fetched this script: its signed word for which site embeds
 * the widget, so the site is credited (server/api/page-routes.ts replaces the placeholder; a copy served as
 * built passes it along as it is, and the server credits nothing for it). Read once into a variable, never compared, so
 * the minifier keeps the text whole.
 */
const SITE_TOKEN: string = '__TABGRID_SITE_TOKEN__';

/** The frame may do only this: run scripts as its own origin, ask for storage access on the click, open links. */
const FRAME_SANDBOX = 'allow-scripts allow-same-origin allow-storage-access-by-user-activation allow-popups allow-popups-to-escape-sandbox';
const WIDTH = 320;

function findScript(): HTMLScriptElement | null {
  const current = document.currentScript;
  if (current instanceof HTMLScriptElement) return current;
  const all = document.querySelectorAll<HTMLScriptElement>('script[src*="/widget.js"]');
  return all[all.length - 1] ?? null;
}

/** Host rules (`div { margin: 40px }`, `* { ... }`) must not move or restyle the card: reset, then place. */
function position(host: HTMLElement, placement: Placement): void {
  const s = host.style;
  const set = (prop: string, value: string) => s.setProperty(prop, value, 'important');
  set('all', 'initial');
  set('display', 'block');
  if (placement === 'inline') {
    set('margin', '16px 0');
    return;
  }
  set('position', 'fixed');
  set('z-index', '2147483000');
  const [v, h] = placement.split('-') as ['top' | 'bottom', 'left' | 'right'];
  set(v, '16px');
  set(h, '16px');
}

function mount(script: HTMLScriptElement, server: string, options: WidgetOptions): void {
  // An autonomous custom element name: host rules for `div` or `iframe` do not match it or its shadow content.
  const host = document.createElement('tabgrid-widget');
  host.setAttribute('data-tabgrid-widget', '');
  position(host, options.placement);
  const root = host.attachShadow({ mode: 'closed' });
  const frame = document.createElement('iframe');
  frame.src = frameUrl(server, options, SITE_TOKEN);
  frame.title = "TabGrid: lend this tab's GPU to research";
  // The frame learns the host's origin (for the site's credit) from the browser, never from this script.
  frame.referrerPolicy = 'origin';
  frame.setAttribute('sandbox', FRAME_SANDBOX);
  frame.setAttribute('loading', 'eager');
  const fs = frame.style;
  fs.setProperty('border', '0');
  fs.setProperty('display', 'block');
  fs.setProperty('width', `${WIDTH}px`);
  fs.setProperty('max-width', 'calc(100vw - 32px)');
  fs.setProperty('height', '132px');
  fs.setProperty('color-scheme', 'normal');
  fs.setProperty('border-radius', '14px');
  fs.setProperty('box-shadow', '0 6px 24px rgba(20, 30, 60, .18)');
  fs.setProperty('background', 'transparent');
  root.append(frame);

  window.addEventListener('message', (e) => {
    if (e.source !== frame.contentWindow || e.origin !== server || !isFrameMessage(e.data)) return;
    fs.setProperty('height', `${Math.min(640, Math.max(48, Math.ceil(e.data.height)))}px`);
  });

  if (options.placement === 'inline' && script.parentNode && script.parentNode !== document.head) {
    script.parentNode.insertBefore(host, script.nextSibling);
  } else if (document.body) {
    document.body.append(host);
  } else {
    document.addEventListener('DOMContentLoaded', () => document.body.append(host), { once: true });
  }
}

(() => {
  try {
    const w = window as unknown as { TabGrid?: TabGridNamespace };
    if (w.TabGrid) return; // included twice: one card per page
    const script = findScript();
    if (!script) return;
    const server = new URL(script.src, location.href).origin;
    const ns: TabGridNamespace = Object.freeze({ version: '1', server });
    Object.defineProperty(window, 'TabGrid', { value: ns, enumerable: false, configurable: false, writable: false });
    mount(script, server, readWidgetOptions({ ...script.dataset }));
  } catch (err) {
    try { console.warn('TabGrid widget could not load:', err); } catch { /* nothing more to do */ }
  }
})();
