/**
 * Figure 2, worker overhead: in a real Chromium tab (the built volunteer page, onnxruntime-web on wasm),
 * a job whose model takes 20 ms or more per task; reports (task wall time on the worker - session.run
 * time) / session.run time, the idle gap between tasks, and whether the next task was in hand each time.
 *
 *   npm run bench:worker -- [--tasks 60] [--width 512] [--layers 16] [--batch 64]
 *
 * Three views of the same run, so each checks the others:
 *   page     a wrapper round the page's WebSocket notes each task:result frame as it leaves: the time between
 *            two is one task's wall time on the worker, and the frame carries the task's session.run time
 *            (runMs); it also times each result's ack, which shows how much of the wall time is the wait for it
 *   timing   status().timing (per-task wallMs, runMs, idleMs kept by the work loop), when the page has it,
 *            read by a MutationObserver whenever the page redraws
 *   server   the replicas' lease and return times from the store: was the next task leased before the last returned?
 * The first `--skip` tasks (model download, session creation, first-run compilation) are left out.
 * The job has replicas 1, canaryRate 0 and adaptive off: one tab, nothing to wait on but the tab itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SqliteStore } from '../server/store/sqlite-store.js';
import { launchChromium, watchProblems } from '../test/helpers/browser.js';
import { ensureClientBuilt } from '../test/helpers/build-client.js';
import { denseChainModel, floatNpy } from './lib/models.js';
import { summarizeProfile } from './profile-summary.js';
import { CpuWindow, ROOT, sleep } from './lib/proc.js';
import { fmt, machineLine, median, numericFlags, percentile, result, say } from './lib/report.js';
import { startServer, upload } from './lib/tabgrid.js';

const { n: opt, s: flag } = numericFlags('npm run bench:worker --', {
  tasks: { default: 60, min: 5, max: 2000, help: 'tasks measured (after the skipped ones)' },
  skip: { default: 5, min: 1, max: 100, help: 'first tasks left out (download, session creation, warm-up)' },
  width: { default: 512, min: 8, max: 4096, help: 'dense layer width (model cost grows with width^2)' },
  layers: { default: 16, min: 1, max: 64, help: 'dense layers (MatMul + Tanh each)' },
  batch: { default: 64, min: 1, max: 4096, help: 'items per task' },
  timeout: { default: 240, min: 10, max: 1800, help: 'seconds before giving up' },
}, {
  backend: { type: 'string', default: 'wasm', help: 'wasm (default) or webgpu (SwiftShader here: slow)' },
  profile: { type: 'boolean', help: 'record the tab\'s CPU profile (Chrome DevTools Protocol) while it works, and summarise it' },
});

/** The per-task timing the work loop reports in status().timing.last, where the page has it. */
interface TaskTiming { replicaId: string; wallMs: number; runMs: number; idleMs: number | null }

interface Snap { t: number; done: number; computeMs: number; timing: { last: TaskTiming | null } | null }

/**
 * Installed before the page's scripts: records status() whenever tasksDone changes, as it changes, and
 * times each task:result from the frame leaving the page to its ack arriving (socket.io's wire format:
 * a binary event "451-<ackId>[...]" out, an ack "43<ackId>[...]" back, or "46<attachments>-<ackId>[...]"
 * when the ack carries the next task's binary inputs).
 */
const RECORDER = `(() => {
  const timeline = [];
  const acks = [];
  const results = [];
  window.__benchResults = results;
  window.__benchTimeline = timeline;
  window.__benchAcks = acks;
  let seen = -1;
  const snap = () => {
    const s = window.tabgrid && window.tabgrid.status && window.tabgrid.status();
    if (!s || s.tasksDone === seen) return;
    seen = s.tasksDone;
    timeline.push({ t: performance.now(), done: s.tasksDone, computeMs: s.computeMs, timing: s.timing ? { last: s.timing.last } : null });
  };
  const watch = () => new MutationObserver(snap).observe(document.documentElement, { subtree: true, childList: true, characterData: true, attributes: true });
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', watch); else watch();
  // The ack is timed by a listener added before socket.io's own: listeners run in order, with a microtask
  // checkpoint between them, so a later listener would only run after the next task had already run.
  const sent = new Map();
  const onMessage = (e) => {
    if (typeof e.data !== 'string') return;
    const a = /^4(?:3|6\\d+-)(\\d+)\\[/.exec(e.data);
    if (a && sent.has(a[1])) { acks.push(performance.now() - sent.get(a[1])); sent.delete(a[1]); }
  };
  const Native = window.WebSocket;
  class Watched extends Native {
    constructor(...args) { super(...args); this.addEventListener('message', onMessage); }
    send(data) {
      if (typeof data === 'string') {
        const m = /^45\\d+-(\\d+)\\["task:result"/.exec(data);
        if (m) {
          const t = performance.now();
          sent.set(m[1], t);
          const run = /"runMs":([0-9.eE+-]+)/.exec(data);
          results.push({ t, runMs: run ? Number(run[1]) : NaN });
        }
      }
      return super.send(data);
    }
  }
  window.WebSocket = Watched;
})();`;

say(`worker overhead: Chromium tab, backend ${flag.backend}, dense ${opt.layers} x ${opt.width}x${opt.width}, batch ${opt.batch}; ${opt.tasks} tasks measured after ${opt.skip}`);
say(`machine: ${machineLine()}`);
const built = await ensureClientBuilt();
if (built) say('built dist/client (vite build)');

const server = await startServer({ keepData: true });
const browser = await launchChromium();
let jobId = '';
let timeline: Snap[] = [];
let ackMs: number[] = [];
let sends: { t: number; runMs: number }[] = [];
let problems: string[] = [];
let others = 0;
let pageProfile: string | null = null;
try {
  const total = opt.tasks + opt.skip;
  const ids = await upload(server.api, denseChainModel(opt.width, opt.layers), { x: floatNpy(total * opt.batch, opt.width) });
  const job = await server.api.createJob({
    model: ids.model, inputs: ids.inputs, batchSize: opt.batch, replicas: 1, canaryRate: 0, adaptive: false, name: 'bench worker overhead',
  });
  jobId = job.id;
  const context = await browser.newContext();
  const page = await context.newPage();
  problems = watchProblems(page);
  await page.addInitScript(RECORDER);
  const cpu = new CpuWindow([server.child.pid]);
  const cdp = flag.profile ? await context.newCDPSession(page) : null;
  if (cdp) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await cdp.send('Profiler.start');
  }
  await page.goto(`${server.url}/?autostart=1&backend=${flag.backend}`);
  const deadline = Date.now() + opt.timeout * 1000;
  for (;;) {
    const view = await server.api.getJob(jobId);
    if (view.status !== 'running') {
      if (view.status !== 'completed') throw new Error(`job ${view.status}: ${view.error ?? ''}`);
      break;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${opt.timeout} s with ${view.tasks.done}/${view.tasks.total} tasks done`);
    await sleep(250);
  }
  others = cpu.others();
  if (cdp) {
    const { profile } = await cdp.send('Profiler.stop');
    const dir = path.join(ROOT, 'test-results', 'bench');
    fs.mkdirSync(dir, { recursive: true });
    pageProfile = path.join(dir, `page-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
    fs.writeFileSync(pageProfile, JSON.stringify(profile));
  }
  await sleep(200);
  timeline = (await page.evaluate('window.__benchTimeline')) as Snap[];
  ackMs = ((await page.evaluate('window.__benchAcks')) as number[]).slice(opt.skip);
  sends = ((await page.evaluate('window.__benchResults')) as { t: number; runMs: number }[]).slice(opt.skip - 1);
  await context.close();
} finally {
  await browser.close();
  await server.stop();
}

// Page view: each task:result frame leaving the page ends a task; the time between two is that task's
// wall time on the worker, and the frame carries its session.run time (runMs).
const steps = sends.slice(1).map((s, i) => ({ wall: s.t - sends[i].t, run: s.runMs }));
const pageRun = steps.reduce((n, s) => n + s.run, 0);
const pageWall = steps.reduce((n, s) => n + s.wall, 0);
const pageOverhead = (pageWall - pageRun) / pageRun;
const gaps = steps.map((s) => s.wall - s.run);

// Work-loop view, when the page reports per-task timing.
const timed = new Map<string, TaskTiming>();
void pageWall;
for (const s of timeline) if (s.timing?.last && s.done > opt.skip) timed.set(s.timing.last.replicaId, s.timing.last);
const tt = [...timed.values()];
const loopView = tt.length > 0 ? {
  tasks: tt.length,
  overhead: (tt.reduce((n, x) => n + x.wallMs, 0) - tt.reduce((n, x) => n + x.runMs, 0)) / tt.reduce((n, x) => n + x.runMs, 0),
  idleMedianMs: median(tt.map((x) => x.idleMs ?? 0)),
  idleP95Ms: percentile(tt.map((x) => x.idleMs ?? 0), 95),
} : null;

// Server view: from the store, after the server stopped.
const store = new SqliteStore(path.join(server.dataDir, 'tabgrid.sqlite'));
const replicas = store.replicasOfJob(jobId).filter((r) => r.status === 'returned').sort((a, b) => (a.returnedAt ?? 0) - (b.returnedAt ?? 0));
store.close();
const measured = replicas.slice(opt.skip);
let inHand = 0;
for (let i = 1; i < measured.length; i++) if (measured[i].leasedAt <= (measured[i - 1].returnedAt ?? Infinity)) inHand++;
const serverCycle = measured.slice(1).map((r, i) => (r.returnedAt ?? 0) - (measured[i].returnedAt ?? 0));
const serverRun = measured.slice(1).reduce((n, r) => n + (r.runMs ?? 0), 0);
const serverOverhead = (serverCycle.reduce((a, b) => a + b, 0) - serverRun) / serverRun;

say();
say(`session.run per task: median ${fmt.ms(median(steps.map((s) => s.run)))} (p5 ${fmt.ms(percentile(steps.map((s) => s.run), 5))}, p95 ${fmt.ms(percentile(steps.map((s) => s.run), 95))})`);
if (median(steps.map((s) => s.run)) < 20) say('  WARNING: tasks under 20 ms: raise --width, --layers or --batch');
say(`page view (${steps.length} tasks): overhead (wall - run) / run = ${fmt.pct(pageOverhead)} (target < 5%); `
  + `time outside session.run per task: median ${fmt.ms(median(gaps))}, p95 ${fmt.ms(percentile(gaps, 95))}`);
if (ackMs.length) {
  say(`result ack round trip (task:result frame out, ack in): median ${fmt.ms(median(ackMs))}, p95 ${fmt.ms(percentile(ackMs, 95))}; `
    + `a loop that waits for the ack before the next task idles this long per task`);
}
if (loopView) {
  say(`work-loop timing (${loopView.tasks} tasks): overhead ${fmt.pct(loopView.overhead)}; idle gap median ${fmt.ms(loopView.idleMedianMs)}, p95 ${fmt.ms(loopView.idleP95Ms)}`);
} else {
  say('work-loop timing: status().timing is not in this build of the page; the page view above is measured from outside the loop');
}
say(`server view (${measured.length} replicas): overhead ${fmt.pct(serverOverhead)} (result-to-result time vs reported runMs); `
  + `next task already leased when the previous result arrived: ${inHand} of ${Math.max(0, measured.length - 1)}`);
say(`other processes on the machine kept ${others.toFixed(2)} cores busy during the run`);
if (problems.length) say(`page problems: ${problems.slice(0, 5).join(' | ')}`);
if (pageProfile) {
  // The whole visit is profiled (page load and model download included): the shares show where the tab's
  // main thread goes besides onnxruntime's WebAssembly kernels, and how long it sits idle.
  const summary = summarizeProfile(pageProfile, { top: 15 });
  say(`profile of the tab's main thread: ${path.relative(ROOT, pageProfile)}`);
  for (const line of summary.lines) say(line);
}

result('worker-overhead', {
  backend: flag.backend, width: opt.width, layers: opt.layers, batch: opt.batch, tasks: steps.length,
  runMedianMs: Number(median(steps.map((s) => s.run)).toFixed(2)),
  pageOverhead: Number(pageOverhead.toFixed(4)), outsideRunMedianMs: Number(median(gaps).toFixed(2)), outsideRunP95Ms: Number(percentile(gaps, 95).toFixed(2)),
  ...(loopView ? { loopOverhead: Number(loopView.overhead.toFixed(4)), idleMedianMs: Number(loopView.idleMedianMs.toFixed(2)), idleP95Ms: Number(loopView.idleP95Ms.toFixed(2)) } : {}),
  ...(ackMs.length ? {
    ackMedianMs: Number(median(ackMs).toFixed(2)), ackP95Ms: Number(percentile(ackMs, 95).toFixed(2)),
    ackShare: Number((ackMs.reduce((a, b) => a + b, 0) / pageRun).toFixed(4)),
  } : {}),
  serverOverhead: Number(serverOverhead.toFixed(4)), nextInHand: `${inHand}/${Math.max(0, measured.length - 1)}`,
  otherCores: Number(others.toFixed(2)), pageProblems: problems.length,
  ...(pageProfile ? { profile: path.relative(ROOT, pageProfile) } : {}),
});
