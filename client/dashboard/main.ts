/**
 * The researchers' dashboard at /dashboard: asks for an API key, then follows the `/dashboard` socket.io
 * feed live (no reloads). Cancel and result downloads use the REST API with the same key. The key is kept
 * in sessionStorage only, so it is gone when the tab closes.
 */
import { io, type Socket } from 'socket.io-client';
import { DASHBOARD_NAMESPACE, type DashboardClientEvents, type DashboardServerEvents } from '../../shared/dashboard-protocol.js';
import { DashboardState } from './dashboard-state.js';
import { DashboardView } from './dashboard-view.js';

const KEY_STORAGE = 'tabgrid.dashboardKey';

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`dashboard: element #${id} is missing`);
  return found as T;
}

function session(): Storage | null {
  try { return globalThis.sessionStorage; } catch { return null; }
}

async function api(key: string, method: string, path: string): Promise<Response> {
  const res = await fetch(path, { method, headers: { authorization: `Bearer ${key}` } });
  if (!res.ok) {
    let message = `HTTP ${res.status}`;
    try { message = ((await res.json()) as { error?: { message?: string } }).error?.message ?? message; } catch { /* not JSON */ }
    throw new Error(message);
  }
  return res;
}

function main(): void {
  const state = new DashboardState();
  let key: string | null = session()?.getItem(KEY_STORAGE) ?? null;
  let socket: Socket<DashboardServerEvents, DashboardClientEvents> | null = null;
  let queued = false;

  const view = new DashboardView(document, {
    async cancel(jobId) {
      if (!key) throw new Error('no API key');
      const res = await api(key, 'POST', `/api/v1/jobs/${encodeURIComponent(jobId)}/cancel`);
      state.upsertJobs([await res.json()]);
      render();
    },
    async download(jobId, output) {
      if (!key) throw new Error('no API key');
      const res = await api(key, 'GET', `/api/v1/jobs/${encodeURIComponent(jobId)}/results/${encodeURIComponent(output)}`);
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = `${jobId}-${output}.npy`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    },
  });

  function render(): void {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; view.render(state, Date.now()); });
  }

  function setConn(text: string, tone: 'ok' | 'warn' | 'bad' | 'idle'): void {
    const pill = el('conn');
    pill.textContent = text;
    pill.dataset.tone = tone;
  }

  function showProblem(text: string | null): void {
    el('key-problem').hidden = !text;
    el('key-problem').textContent = text ?? '';
  }

  function connect(k: string): void {
    socket?.disconnect();
    el('key-form').hidden = true;
    el('session').hidden = false;
    showProblem(null);
    setConn('Connecting…', 'warn');
    const s: Socket<DashboardServerEvents, DashboardClientEvents> = io(DASHBOARD_NAMESPACE, { auth: { key: k }, transports: ['websocket', 'polling'] });
    socket = s;
    s.on('connect', () => setConn('Live', 'ok'));
    s.on('disconnect', (reason) => setConn(reason === 'io client disconnect' ? 'Disconnected' : 'Reconnecting…', 'warn'));
    s.on('connect_error', (err) => {
      // A refused key is final (socket.io does not retry middleware refusals); a network error retries.
      if (/API key/.test(err.message)) {
        forget();
        showProblem(`The server refused this key: ${err.message}.`);
      } else {
        setConn(`Cannot reach the server (${err.message})`, 'bad');
      }
    });
    s.on('dashboard:snapshot', (snap) => { state.applySnapshot(snap); el('board').hidden = false; render(); });
    s.on('dashboard:jobs', (jobs) => { state.upsertJobs(jobs); render(); });
    s.on('dashboard:workers', (workers) => { state.workers = workers; render(); });
    s.on('dashboard:sample', (sample) => { state.addSample(sample); render(); });
    s.on('dashboard:verification', (v) => { state.verification = v; render(); });
  }

  function forget(): void {
    socket?.disconnect();
    socket = null;
    key = null;
    session()?.removeItem(KEY_STORAGE);
    el('key-form').hidden = false;
    el('session').hidden = true;
    el('board').hidden = true;
  }

  el<HTMLFormElement>('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = el<HTMLInputElement>('api-key');
    const k = input.value.trim();
    if (!k) return;
    input.value = '';
    key = k;
    try { session()?.setItem(KEY_STORAGE, k); } catch { /* storage refused: the key lives for this page only */ }
    connect(k);
  });
  el('forget').addEventListener('click', () => forget());
  // Relative times ("3 min") and the chart's time axis move even when nothing else does.
  setInterval(() => { if (socket) render(); }, 5000);
  if (key) connect(key);
}

main();
