/**
 * The widget card's DOM, inside the frame: the offer before opt-in, then status, stats and the controls.
 * It renders a Donation snapshot and reports clicks; after each render it tells the loader its height.
 */
import { STATE_TEXT, formatDuration } from '../volunteer/volunteer-view.js';
import type { DonationSnapshot } from '../volunteer/donation.js';
import { formatCredit } from '../volunteer/leaderboard.js';
import { describePause } from '../volunteer/pause-rules.js';

function el<T extends HTMLElement = HTMLElement>(doc: Document, id: string): T {
  const found = doc.getElementById(id);
  if (!found) throw new Error(`widget frame: element #${id} is missing`);
  return found as T;
}

export class FrameView {
  readonly optIn: HTMLButtonElement;
  readonly stop: HTMLButtonElement;
  readonly throttle: HTMLInputElement;
  private lastHeight = 0;

  constructor(private readonly doc: Document, private readonly onResize: (width: number, height: number) => void) {
    this.optIn = el<HTMLButtonElement>(doc, 'opt-in');
    this.stop = el<HTMLButtonElement>(doc, 'stop');
    this.throttle = el<HTMLInputElement>(doc, 'throttle');
    this.throttle.addEventListener('input', () => { el(doc, 'throttle-value').textContent = `${this.throttle.value}%`; });
  }

  render(m: DonationSnapshot, site: string | null, siteCredit: number | null): void {
    const d = this.doc;
    const s = m.status;
    el(d, 'card').dataset.state = m.started ? 'running' : 'offer';
    el(d, 'offer').hidden = m.started;
    el(d, 'running').hidden = !m.started;
    this.optIn.disabled = m.blocked !== null;
    el(d, 'offer-throttle').textContent = `${m.prefs.throttle}%`;
    el(d, 'headline').textContent = m.started ? 'Thank you for lending this tab.' : "Lend this tab's spare GPU time to research.";

    const [text, tone] = STATE_TEXT[s.state];
    const pill = el(d, 'state-pill');
    pill.textContent = s.state === 'resting' ? 'Resting' : text.replace(', waiting for work', '');
    pill.dataset.tone = tone;
    el(d, 'state-detail').textContent = s.state === 'paused' ? (describePause(m.pauseReasons) ?? '')
      : s.state === 'resting' ? `using ${s.throttle}% of GPU time` : s.state === 'waiting' ? 'waiting for work' : '';
    // Interactive requests served, when any, beside the tasks (the card has room for one line of counts).
    el(d, 'tasks-done').textContent = s.tasksDone.toLocaleString('en-US') + (s.interactiveServed ? ` + ${s.interactiveServed.toLocaleString('en-US')} interactive` : '');
    el(d, 'compute-time').textContent = formatDuration(s.computeMs);
    el(d, 'credit').textContent = m.stats ? formatCredit(m.stats.credit) : '0';
    el(d, 'job').textContent = s.currentJob ? `Helping job ${s.currentJob}.` : 'Waiting for a job.';
    el(d, 'site-credit').textContent = site
      ? `Credited to you and to ${site.replace(/^https?:\/\//, '')}${siteCredit !== null ? ` (site total ${formatCredit(siteCredit)})` : ''}.`
      : '';
    if (d.activeElement !== this.throttle) {
      this.throttle.value = String(m.prefs.throttle);
      el(d, 'throttle-value').textContent = `${m.prefs.throttle}%`;
    }
    const storage = el(d, 'storage-note');
    storage.hidden = m.persistent;
    storage.textContent = 'This browser keeps no storage for embedded frames, so your choice lasts for this visit only.';
    const problem = el(d, 'problem');
    const latest = m.blocked ?? m.errors[0]?.message ?? null;
    problem.hidden = !latest;
    problem.textContent = latest ?? '';
    this.reportSize();
  }

  private reportSize(): void {
    const card = el(this.doc, 'card');
    const height = Math.ceil(card.getBoundingClientRect().height);
    if (height === this.lastHeight || height === 0) return;
    this.lastHeight = height;
    this.onResize(Math.ceil(card.getBoundingClientRect().width), height);
  }
}
