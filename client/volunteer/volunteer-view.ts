/**
 * The volunteer page's DOM: renders a snapshot of what the page knows, and reports what the volunteer does.
 * Holds no state of its own, so what is shown is always what `window.tabgrid.status()` returns.
 */
import type { LoopState, LoopStatus } from '../net/work-loop.js';
import type { WebGpuProbe } from '../runtime/webgpu-probe.js';
import { describeBattery } from './device-watch.js';
import type { DonationSnapshot } from './donation.js';
import { type Leaderboard, formatCredit, renderLeaderboard } from './leaderboard.js';
import { describePause } from './pause-rules.js';
import type { RecentError } from './recent-errors.js';

type Tone = 'idle' | 'ok' | 'busy' | 'warn' | 'bad';

export const STATE_TEXT: Record<LoopState, [string, Tone]> = {
  idle: ['Not started', 'idle'],
  connecting: ['Connecting…', 'warn'],
  waiting: ['Connected, waiting for work', 'ok'],
  working: ['Working', 'busy'],
  resting: ['Resting (throttle)', 'ok'],
  paused: ['Paused', 'warn'],
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
  private readonly throttle: HTMLInputElement;
  private readonly pauseHidden: HTMLInputElement;
  private readonly profile: HTMLFormElement;
  private profileEdited = false;

  constructor(private readonly doc: Document) {
    this.start = el<HTMLButtonElement>(doc, 'start');
    this.stop = el<HTMLButtonElement>(doc, 'stop');
    this.throttle = el<HTMLInputElement>(doc, 'throttle');
    this.pauseHidden = el<HTMLInputElement>(doc, 'pause-hidden');
    this.profile = el<HTMLFormElement>(doc, 'profile');
    this.profile.addEventListener('input', () => { this.profileEdited = true; });
  }

  onStart(handler: () => void): void {
    this.start.addEventListener('click', handler);
  }

  onStop(handler: () => void): void {
    this.stop.addEventListener('click', handler);
  }

  onThrottle(handler: (percent: number) => void): void {
    this.throttle.addEventListener('input', () => {
      el(this.doc, 'throttle-value').textContent = `${this.throttle.value}%`;
      handler(Number(this.throttle.value));
    });
  }

  onPauseHidden(handler: (on: boolean) => void): void {
    this.pauseHidden.addEventListener('change', () => handler(this.pauseHidden.checked));
  }

  onProfile(handler: (p: { name: string; team: string }) => Promise<void>): void {
    this.profile.addEventListener('submit', (e) => {
      e.preventDefault();
      const name = el<HTMLInputElement>(this.doc, 'profile-name').value.trim();
      const team = el<HTMLInputElement>(this.doc, 'profile-team').value.trim();
      el(this.doc, 'profile-note').textContent = 'Saving…';
      handler({ name, team }).then(
        () => { this.profileEdited = false; el(this.doc, 'profile-note').textContent = 'Saved.'; },
        (err: unknown) => { el(this.doc, 'profile-note').textContent = `Not saved: ${err instanceof Error ? err.message : String(err)}`; },
      );
    });
  }

  /** Describes the device once the WebGPU probe is done. */
  showDevice(gpu: WebGpuProbe, isolated: boolean, forced: string | undefined): void {
    const webgpu = el(this.doc, 'webgpu');
    webgpu.textContent = gpu.available ? `available: ${gpu.label ?? 'unknown adapter'}` : `not available: ${gpu.problem}`;
    el(this.doc, 'wasm-threads').textContent = (isolated
      ? `multi-threaded (page is cross-origin isolated), ${navigator.hardwareConcurrency || '?'} cores`
      : 'single thread (page is not cross-origin isolated)') + ', in a worker beside the page';
    if (forced) el(this.doc, 'backend-mode').textContent = `forced to ${forced} by the page address (?backend=${forced})`;
  }

  render(m: DonationSnapshot): void {
    const s = m.status;
    const [text, tone] = m.blocked ? ['Cannot start', 'bad' as Tone] : STATE_TEXT[s.state];
    const pill = el(this.doc, 'state-pill');
    pill.textContent = s.state === 'resting' ? `Resting (using ${s.throttle}% of GPU time)` : text;
    pill.dataset.tone = tone;
    el(this.doc, 'state-detail').textContent = m.blocked ?? detailFor(m);
    el(this.doc, 'consent-note').textContent = consentText(m);

    this.start.disabled = m.started || m.blocked !== null;
    this.stop.disabled = !m.started;

    if (this.doc.activeElement !== this.throttle) {
      this.throttle.value = String(m.prefs.throttle);
      el(this.doc, 'throttle-value').textContent = `${m.prefs.throttle}%`;
    }
    this.pauseHidden.checked = m.prefs.pauseWhenHidden;
    el(this.doc, 'battery').textContent = describeBattery(m.battery);
    setNote(el(this.doc, 'pause-note'), describePause(m.pauseReasons));

    el(this.doc, 'tasks-done').textContent = s.tasksFailed
      ? `${s.tasksDone.toLocaleString('en-US')} (${s.tasksFailed} failed)`
      : s.tasksDone.toLocaleString('en-US');
    el(this.doc, 'compute-time').textContent = formatDuration(s.computeMs);
    const interactive = el(this.doc, 'interactive-served');
    interactive.textContent = s.interactiveFailed
      ? `${s.interactiveServed.toLocaleString('en-US')} (${s.interactiveFailed} failed)`
      : s.interactiveServed.toLocaleString('en-US');
    interactive.title = warmText(s.interactiveWarm.length);
    el(this.doc, 'credit').textContent = m.stats ? formatCredit(m.stats.credit) : '0';
    el(this.doc, 'rank').textContent = m.stats && m.stats.credit > 0 ? `#${m.stats.rank}` : '–';
    el(this.doc, 'current-job').textContent = s.currentJob ?? 'none';
    el(this.doc, 'backend').textContent = s.backend ?? 'not chosen yet';
    setNote(el(this.doc, 'backend-reason'), m.backendReason && `Why: ${m.backendReason}`);
    setNote(el(this.doc, 'activity'), m.activity && `Now: ${m.activity}`);
    el(this.doc, 'identity').textContent = s.volunteerId ? `volunteer ${s.volunteerId}` : 'none yet (given on first connection)';
    el(this.doc, 'storage').textContent = m.persistent
      ? 'your identity, choice and settings are kept in this browser for this site'
      : 'nothing (this browser refuses storage here): identity and choice last for this visit only';

    this.renderProfile(m);
    this.renderErrors(m.errors);
  }

  renderLeaderboard(lb: Leaderboard, me: { rank?: number; team?: string | null }): void {
    renderLeaderboard(this.doc, {
      volunteers: el(this.doc, 'lb-volunteers'), teams: el(this.doc, 'lb-teams'), sites: el(this.doc, 'lb-sites'),
    }, lb, me);
  }

  private renderProfile(m: DonationSnapshot): void {
    el<HTMLButtonElement>(this.doc, 'profile-save').disabled = !m.status.connected;
    if (!this.profileEdited && m.stats) {
      el<HTMLInputElement>(this.doc, 'profile-name').value = m.stats.name ?? '';
      el<HTMLInputElement>(this.doc, 'profile-team').value = m.stats.team ?? '';
    }
    const note = el(this.doc, 'profile-note');
    if (!m.status.connected && note.textContent !== 'Saved.') note.textContent = 'Connect (Start) to set a name.';
    else if (m.status.connected && note.textContent === 'Connect (Start) to set a name.') note.textContent = '';
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

function consentText(m: DonationSnapshot): string {
  if (m.started && m.consentAt !== null) {
    const when = new Date(m.consentAt).toLocaleString();
    return m.persistent
      ? `You opted in on ${when}; this page starts on its own on your next visits until you press Stop.`
      : `You opted in on ${when}; this browser keeps no storage here, so the next visit asks again.`;
  }
  return 'Nothing runs until you press Start. Your choice is remembered for this site; Stop forgets it.';
}

function detailFor(m: DonationSnapshot): string {
  const s: LoopStatus = m.status;
  if (!m.started && s.state === 'idle') return 'Press Start to begin.';
  if (s.state === 'stopped') return 'Nothing is running. Press Start to continue.';
  if (s.state === 'paused') return describePause(m.pauseReasons) ?? '';
  if (s.state === 'connecting' && s.lastError) return s.lastError;
  if (s.state === 'error') return s.lastError ?? '';
  return '';
}

/** What the interactive count's tooltip says about the models kept ready for apps' requests. */
export function warmText(models: number): string {
  if (models === 0) return 'single requests from apps, answered at once from a model kept ready; none kept ready now';
  return `single requests from apps, answered at once; ${models} model${models === 1 ? '' : 's'} kept ready for them now`;
}

function setNote(node: HTMLElement, text: string | null): void {
  node.hidden = !text;
  node.textContent = text ?? '';
}
