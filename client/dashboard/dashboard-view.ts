/**
 * The dashboard's DOM: summary tiles, the throughput chart, one card per job (progress, ETA, verification,
 * failures, cancel, downloads), the workers online and the agreement between worker classes.
 * Job cards are kept by id and updated in place, so a half-confirmed Cancel survives a live update.
 * Text from strangers (volunteers' error reports and adapter names, job names) goes in as textContent, never
 * markup, and through safeText, so bidi controls cannot reorder what the researcher reads.
 */
import type { JobVerification, WorkerView } from '../../shared/dashboard-protocol.js';
import type { JobView } from '../../shared/protocol.js';
import { safeText } from '../../shared/safe-text.js';
import { type DashboardState, formatEta, formatRate } from './dashboard-state.js';
import { drawThroughput } from './throughput-chart.js';

export interface JobActions {
  cancel(jobId: string): Promise<void>;
  download(jobId: string, output: string): Promise<void>;
}

function el<T extends HTMLElement = HTMLElement>(doc: Document, id: string): T {
  const found = doc.getElementById(id);
  if (!found) throw new Error(`dashboard: element #${id} is missing`);
  return found as T;
}

function make<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = doc.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const pct = (v: number | null) => (v === null ? '–' : `${(v * 100).toFixed(v === 1 ? 0 : 1)}%`);
const since = (at: number, now: number) => {
  const s = Math.max(0, Math.round((now - at) / 1000));
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
};

function adapterText(w: WorkerView): string {
  const a = w.adapter;
  if (!a) return w.kind === 'node' ? 'CPU (onnxruntime-node)' : 'none';
  const name = a.architecture || a.device || a.description || 'unknown';
  return safeText(`${a.isFallbackAdapter ? 'software ' : ''}${name}${a.vendor ? ` (${a.vendor})` : ''}`, 300);
}

class JobCard {
  readonly root: HTMLElement;
  private readonly title: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly id: HTMLElement;
  private readonly done: HTMLElement;
  private readonly failed: HTMLElement;
  private readonly nums: HTMLElement;
  private readonly verify: HTMLElement;
  private readonly failures: HTMLElement;
  private readonly actions: HTMLElement;
  private readonly cancel: HTMLButtonElement;
  private confirmUntil = 0;
  private downloadsFor = '';

  constructor(private readonly doc: Document, private readonly jobId: string, private readonly act: JobActions) {
    this.root = make(doc, 'article', 'job');
    this.root.dataset.jobId = jobId;
    this.title = make(doc, 'h3');
    this.badge = make(doc, 'span', 'badge');
    this.id = make(doc, 'code', 'muted');
    this.done = make(doc, 'span', 'done');
    this.failed = make(doc, 'span', 'failed');
    this.nums = make(doc, 'p', 'nums');
    this.verify = make(doc, 'p', 'verify muted');
    this.failures = make(doc, 'ul', 'failures');
    this.actions = make(doc, 'div', 'actions');
    this.cancel = make(doc, 'button', 'btn small danger', 'Cancel job');
    const head = make(doc, 'header');
    head.append(this.title, this.badge, this.id);
    const bar = make(doc, 'div', 'bar');
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuemin', '0');
    bar.append(this.done, this.failed);
    this.cancel.type = 'button';
    this.cancel.dataset.action = 'cancel';
    this.cancel.addEventListener('click', () => this.onCancel());
    this.root.append(head, bar, this.nums, this.verify, this.failures, this.actions);
  }

  private onCancel(): void {
    // Two clicks within 4 s: a live board is no place for a modal dialog, and one stray click must not cancel.
    const now = Date.now();
    if (now > this.confirmUntil) {
      this.confirmUntil = now + 4000;
      this.cancel.textContent = 'Click again to cancel';
      setTimeout(() => { if (Date.now() >= this.confirmUntil) this.cancel.textContent = 'Cancel job'; }, 4100);
      return;
    }
    this.cancel.disabled = true;
    this.cancel.textContent = 'Cancelling…';
    this.act.cancel(this.jobId).catch((err: unknown) => {
      this.cancel.disabled = false;
      this.cancel.textContent = `Cancel failed: ${err instanceof Error ? err.message : String(err)}`;
    });
  }

  update(job: JobView, state: DashboardState, v: JobVerification | undefined): void {
    const t = job.tasks;
    this.root.dataset.status = job.status;
    this.title.textContent = job.name ? safeText(job.name, 200) : job.id;
    this.badge.textContent = job.status;
    this.badge.dataset.status = job.status;
    this.id.textContent = job.name ? job.id : `${job.items.toLocaleString('en-US')} items`;
    const bar = this.done.parentElement!;
    bar.setAttribute('aria-valuemax', String(t.total));
    bar.setAttribute('aria-valuenow', String(t.done));
    this.done.style.width = `${t.total ? (100 * t.done) / t.total : 0}%`;
    this.failed.style.width = `${t.total ? (100 * t.failed) / t.total : 0}%`;

    const parts = [`${t.done.toLocaleString('en-US')} / ${t.total.toLocaleString('en-US')} tasks`, `${t.running} running`];
    if (t.failed) parts.push(`${t.failed} failed`);
    if (t.canaries) parts.push(`${t.canaries} known-answer`);
    if (job.status === 'running') parts.push(`ETA ${formatEta(state.eta(job.id))}`, `${formatRate(state.jobRate(job.id))} tasks/s`);
    else if (job.finishedAt) parts.push(`took ${formatEta(job.finishedAt - job.createdAt)}`);
    this.nums.textContent = parts.join(' · ');

    const vparts = [`replicas per task ${v?.replicasPerTask?.toFixed(2) ?? '–'} (quorum ${job.replicas}${job.adaptive ? ', adaptive' : ''})`,
      `${job.replicasIssued.toLocaleString('en-US')} replicas issued`];
    if (v) {
      vparts.push(`${v.rejected} rejected`);
      const lost = v.lost.expired + v.lost.failed + v.lost.released;
      if (lost) vparts.push(`${v.lost.expired} lapsed, ${v.lost.failed} errored, ${v.lost.released} handed back`);
    }
    this.verify.textContent = vparts.join(' · ');

    const settled = [...(job.error ? [`job: ${safeText(job.error)}`] : []), ...job.failures.map((f) => `batch ${f.batch}: ${safeText(f.reason)}`)];
    // A replica's error that a task failure already quotes is said once.
    const replicaErrors = [...new Set((v?.recentErrors ?? []).map((e) => safeText(e.reason)))]
      .filter((r) => !settled.some((line) => line.includes(r))).map((r) => `replica: ${r}`);
    const reasons = [...settled, ...replicaErrors].slice(0, 6);
    this.failures.replaceChildren(...reasons.map((r) => make(this.doc, 'li', '', r)));
    this.failures.hidden = reasons.length === 0;

    this.renderActions(job);
  }

  private renderActions(job: JobView): void {
    const key = `${job.status}|${job.outputs.map((o) => o.name).join(',')}`;
    if (key === this.downloadsFor) return;
    this.downloadsFor = key;
    const buttons: HTMLElement[] = [];
    if (job.status === 'running') buttons.push(this.cancel);
    if (job.status === 'completed') {
      for (const o of job.outputs) {
        const b = make(this.doc, 'button', 'btn small', `Download ${safeText(o.name, 256)}.npy`);
        b.type = 'button';
        b.dataset.output = o.name;
        b.addEventListener('click', () => {
          b.disabled = true;
          this.act.download(job.id, o.name).then(
            () => { b.disabled = false; },
            (err: unknown) => { b.disabled = false; b.textContent = `Download failed: ${err instanceof Error ? err.message : String(err)}`; },
          );
        });
        buttons.push(b);
      }
    }
    this.actions.replaceChildren(...buttons);
    this.actions.hidden = buttons.length === 0;
  }
}

export class DashboardView {
  private readonly cards = new Map<string, JobCard>();

  constructor(private readonly doc: Document, private readonly act: JobActions) {}

  render(state: DashboardState, now: number): void {
    const d = this.doc;
    const jobs = state.sortedJobs();
    el(d, 't-running').textContent = String(jobs.filter((j) => j.status === 'running').length);
    el(d, 't-rate').textContent = formatRate(state.currentRate());
    el(d, 't-workers').textContent = String(state.workers.length);
    el(d, 't-agreement').textContent = pct(state.verification.agreement);
    el(d, 'scope').textContent = state.scope === 'all' ? 'admin key: every job' : 'your jobs';
    drawThroughput(d, el(d, 'chart'), state.throughput(), state.samples.at(-1)?.at ?? now);

    el(d, 'no-jobs').hidden = jobs.length > 0;
    const list = el(d, 'jobs');
    const order: HTMLElement[] = [];
    for (const job of jobs) {
      let card = this.cards.get(job.id);
      if (!card) {
        card = new JobCard(d, job.id, this.act);
        this.cards.set(job.id, card);
      }
      card.update(job, state, state.verification.jobs[job.id]);
      order.push(card.root);
    }
    // Re-append only when the order changed, so focus and hover survive updates.
    if (order.some((node, i) => list.children[i] !== node) || list.children.length !== order.length) list.replaceChildren(...order);

    // A network of servers on one database says which server each worker is on.
    const servers = state.workers.some((w) => w.server);
    el(d, 'th-server').hidden = !servers;
    const host = (url: string) => safeText(url.replace(/^https?:\/\//, ''), 300);
    el(d, 'workers').replaceChildren(...(state.workers.length ? state.workers.map((w) => {
      const tr = make(d, 'tr');
      tr.append(
        make(d, 'td', 'mono nowrap', w.workerId), make(d, 'td', 'nowrap', w.kind), make(d, 'td', '', safeText(w.backends.join(', '), 300)),
        make(d, 'td', '', adapterText(w)), make(d, 'td', '', w.site ? host(w.site) : '–'),
        ...(servers ? [make(d, 'td', 'mono nowrap', w.server ? host(w.server) : '–')] : []),
        make(d, 'td', 'nowrap', since(w.connectedAt, now)),
      );
      return tr;
    }) : [emptyRow(d, 6, 'No worker is connected.')]));

    const classes = state.verification.classes;
    el(d, 'classes').replaceChildren(...(classes.length ? classes.map((c) => {
      const tr = make(d, 'tr');
      tr.append(make(d, 'td', 'mono', safeText(c.a, 300)), make(d, 'td', 'mono', safeText(c.b, 300)), make(d, 'td', 'num', String(c.agree)),
        make(d, 'td', 'num', String(c.disagree)), make(d, 'td', 'num', pct(c.agreement)));
      return tr;
    }) : [emptyRow(d, 5, 'No replicas compared yet.')]));
  }
}

function emptyRow(doc: Document, span: number, text: string): HTMLTableRowElement {
  const tr = make(doc, 'tr', 'empty');
  const td = make(doc, 'td', '', text);
  td.colSpan = span;
  tr.append(td);
  return tr;
}
