/**
 * The volunteer page's DOM: renders a snapshot of what the page knows, and reports button clicks.
 * Holds no state of its own, so what is shown is always what `window.tabgrid.status()` returns.
 */
import type { LoopState, LoopStatus } from '../net/work-loop.js';
import type { WebGpuProbe } from '../runtime/webgpu-probe.js';
import type { RecentError } from './recent-errors.js';

export interface ViewModel {
  status: LoopStatus;
  /** Whether the volunteer has pressed Start (and not Stop since). */
  started: boolean;
  /** Set when the page cannot start at all (e.g. `?backend=webgpu` without WebGPU). */
  blocked: string | null;
  backendReason: string | null;
  activity: string | null;
  errors: RecentError[];
}

type Tone = 'idle' | 'ok' | 'busy' | 'warn' | 'bad';

const STATE_TEXT: Record<LoopState, [string, Tone]> = {
  idle: ['Not started', 'idle'],
  connecting: ['Connecting…', 'warn'],
  waiting: ['Connected, waiting for work', 'ok'],
  working: ['Working', 'busy'],
  stopped: ['Stopped', 'idle'],
  error: ['Error', 'bad'],
};

/** "0 s", "12.3 s", "4 min 12 s", "1 h 03 min". */
export function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s < 10 && s > 0 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

function el<T extends HTMLElement = HTMLElement>(doc: Document, id: string): T {
  const found = doc.getElementById(id);
  if (!found) throw new Error(`volunteer page: element #${id} is missing`);
  return found as T;
}

export class VolunteerView {
  private readonly start: HTMLButtonElement;
  private readonly stop: HTMLButtonElement;

  constructor(private readonly doc: Document) {
    this.start = el<HTMLButtonElement>(doc, 'start');
    this.stop = el<HTMLButtonElement>(doc, 'stop');
  }

  onStart(handler: () => void): void {
    this.start.addEventListener('click', handler);
  }

  onStop(handler: () => void): void {
    this.stop.addEventListener('click', handler);
  }

  /** Describes the device once the WebGPU probe is done. */
  showDevice(gpu: WebGpuProbe, isolated: boolean, forced: string | undefined): void {
    const webgpu = el(this.doc, 'webgpu');
    webgpu.textContent = gpu.available ? `available: ${gpu.label ?? 'unknown adapter'}` : `not available: ${gpu.problem}`;
    el(this.doc, 'wasm-threads').textContent = isolated
      ? `multi-threaded (page is cross-origin isolated), ${navigator.hardwareConcurrency || '?'} cores`
      : 'single thread (page is not cross-origin isolated)';
    if (forced) el(this.doc, 'backend-mode').textContent = `forced to ${forced} by the page address (?backend=${forced})`;
  }

  render(m: ViewModel): void {
    const s = m.status;
    const [text, tone] = m.blocked ? ['Cannot start', 'bad' as Tone] : STATE_TEXT[s.state];
    const pill = el(this.doc, 'state-pill');
    pill.textContent = text;
    pill.dataset.tone = tone;
    el(this.doc, 'state-detail').textContent = m.blocked ?? detailFor(m);

    this.start.disabled = m.started || m.blocked !== null;
    this.stop.disabled = !m.started;

    el(this.doc, 'tasks-done').textContent = s.tasksFailed
      ? `${s.tasksDone.toLocaleString('en-US')} (${s.tasksFailed} failed)`
      : s.tasksDone.toLocaleString('en-US');
    el(this.doc, 'compute-time').textContent = formatDuration(s.computeMs);
    el(this.doc, 'current-job').textContent = s.currentJob ?? 'none';
    el(this.doc, 'backend').textContent = s.backend ?? 'not chosen yet';
    setNote(el(this.doc, 'backend-reason'), m.backendReason && `Why: ${m.backendReason}`);
    setNote(el(this.doc, 'activity'), m.activity && `Now: ${m.activity}`);
    el(this.doc, 'identity').textContent = s.volunteerId ? `volunteer ${s.volunteerId}` : 'none yet (given on first connection)';

    this.renderErrors(m.errors);
  }

  private renderErrors(errors: RecentError[]): void {
    const list = el(this.doc, 'errors');
    el(this.doc, 'no-errors').hidden = errors.length > 0;
    list.replaceChildren(...errors.map((e) => {
      const li = this.doc.createElement('li');
      const time = this.doc.createElement('time');
      time.dateTime = new Date(e.at).toISOString();
      time.textContent = new Date(e.at).toLocaleTimeString();
      li.append(time, e.message);
      if (e.count > 1) {
        const count = this.doc.createElement('span');
        count.className = 'count';
        count.textContent = `×${e.count}`;
        li.append(count);
      }
      return li;
    }));
  }
}

function detailFor(m: ViewModel): string {
  const s = m.status;
  if (!m.started && s.state === 'idle') return 'Press Start to begin.';
  if (s.state === 'stopped') return 'Nothing is running. Press Start to continue.';
  if (s.state === 'connecting' && s.lastError) return s.lastError;
  if (s.state === 'error') return s.lastError ?? '';
  return '';
}

function setNote(node: HTMLElement, text: string | null): void {
  node.hidden = !text;
  node.textContent = text ?? '';
}
