// @vitest-environment node
/**
 * The widget on a third-party page, in Chromium: a host page on another site (http://localhost:PORT, while
 * the server is http://127.0.0.1:PORT) with a strict CSP and cross-origin isolation (COOP + COEP) embeds
 * `widget.js` with one line. Nothing runs before the click; one click in the frame opts in; the tab computes
 * the tasks of a running job, throttled to 50% of its time; the outputs equal onnxruntime-node's; the
 * volunteer and the site get credit; Stop hands the lease in flight back at once. The host page shows no
 * error, gains exactly one global name (`TabGrid`) and its DOM outside the widget is untouched. The site is
 * credited on the token the server signed for the host page when it served widget.js, handed to the frame.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Frame, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import type { TabgridPage } from '../../client/volunteer/page-api.js';
import { readSiteToken } from '../../client/widget/embed-origin.js';
import { SiteTokens } from '../../server/auth/site-tokens.js';
import { systemClock } from '../../server/scheduler/clock.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import type { JobView } from '../../shared/protocol.js';
import { launchChromium, watchProblems } from '../helpers/browser.js';
import { ensureClientBuilt } from '../helpers/build-client.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { startTestServer } from '../helpers/server.js';
import { npyTensor, reference, startWorkers } from '../helpers/workers.js';

declare global {
  interface Window { tabgrid?: TabgridPage }
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCREENSHOT = path.join(ROOT, 'test-results', 'widget-host.png');
// Tasks of some tens of ms on one wasm thread, so the throttle's rests are long against timer jitter.
const IN = 512;
const HIDDEN = 2048;
const OUT = 16;
const BATCH = 256;
const TASKS = 30;
const THROTTLE = 50;

const HOST_BODY = `
  <header class="site"><h1 id="headline">The Daily Example</h1><nav><a href="#a">News</a> · <a href="#b">Sport</a></nav></header>
  <article id="story"><h2>Local library opens late on Thursdays</h2>
    <p>From next week the library stays open until nine, the council said.</p>
    <ul id="facts"><li>Thursdays until 21:00</li><li>Free entry</li></ul>
  </article>`;

/** The host page's own script: records errors and the global names before the widget, adding none itself. */
const HOST_JS = `(() => {
  const root = document.documentElement;
  root.dataset.globals = JSON.stringify(Object.getOwnPropertyNames(window));
  root.dataset.errors = '[]';
  const note = (m) => { root.dataset.errors = JSON.stringify([...JSON.parse(root.dataset.errors), String(m)]); };
  window.addEventListener('error', (e) => note(e.message));
  window.addEventListener('unhandledrejection', (e) => note(e.reason));
})();`;

const HOST_CSS = 'body { font: 16px Georgia, serif; margin: 2rem auto; max-width: 40rem; color: #222; } div { outline: 3px solid red; margin: 40px; }';

function hostPage(server: string): { html: string; headers: Record<string, string> } {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>The Daily Example</title>
<link rel="stylesheet" href="/host.css"><script src="/host.js"></script></head><body>${HOST_BODY}
  <script src="${server}/widget.js" async data-throttle="${THROTTLE}" data-theme="light" data-placement="bottom-right" data-backend="wasm"></script>
</body></html>`;
  return {
    html,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      // Strict: no inline script or style, scripts and frames only from itself and the TabGrid server.
      'content-security-policy': `default-src 'self'; script-src 'self' ${server}; frame-src ${server}; style-src 'self'; img-src 'self'`,
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    },
  };
}

describe('widget on a third-party page (Chromium)', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let api: ApiClient;
  let browser: Browser;
  let host: http.Server;
  let hostUrl = '';
  let page: Page;
  let frame: Frame;
  let problems: string[];
  const requests: string[] = [];
  /** Chromium logs a refused requestStorageAccess() as console errors; the refusal is expected here. */
  const storageRefusals: string[] = [];
  const model = mlpModel(IN, HIDDEN, OUT, 7);
  let modelHash = '';

  async function job(tasks: number, seed: number): Promise<{ job: JobView; x: Uint8Array }> {
    const x = writeNpy('float32', [tasks * BATCH, IN], floatData(seed, tasks * BATCH * IN));
    const dataset = await api.uploadDataset(x);
    const created = await api.createJob({ model: modelHash, inputs: { x: dataset.hash }, batchSize: BATCH, replicas: 1, canaryRate: 0 });
    return { job: created, x };
  }

  const status = () => frame.evaluate(() => window.tabgrid!.status());

  beforeAll(async () => {
    await ensureClientBuilt();
    server = await startTestServer();
    api = new ApiClient(server.url, server.apiKey);
    modelHash = (await api.uploadModel(model)).hash;
    const { html, headers } = hostPage(server.url);
    host = http.createServer((req, res) => {
      if (req.url === '/host.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(HOST_JS);
      else if (req.url === '/host.css') res.writeHead(200, { 'content-type': 'text/css' }).end(HOST_CSS);
      else if (req.url === '/') res.writeHead(200, headers).end(html);
      else if (req.url === '/favicon.ico') res.writeHead(204).end();
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
    // "localhost" and "127.0.0.1" are different sites: the frame is a true third-party frame.
    hostUrl = `http://localhost:${(host.address() as AddressInfo).port}`;
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
    page = await context.newPage();
    problems = watchProblems(page);
    page.on('console', (msg) => {
      if (msg.type() === 'error' && msg.text().startsWith('requestStorageAccess:')) storageRefusals.push(msg.location().url);
    });
    page.on('request', (req) => requests.push(req.url()));
    page.on('response', (res) => { if (res.status() >= 400) problems.push(`HTTP ${res.status()} for ${res.url()}`); });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => host?.close(r));
    await server?.close();
  });

  it('loads into a strict, cross-origin-isolated page without touching it, and computes nothing before the click', async () => {
    await page.goto(`${hostUrl}/`);
    await expect.poll(() => page.frames().some((f) => f.url().startsWith(`${server.url}/widget/frame`)), { timeout: 15_000 }).toBe(true);
    frame = page.frames().find((f) => f.url().startsWith(`${server.url}/widget/frame`))!;
    await frame.waitForFunction(() => window.tabgrid !== undefined, undefined, { timeout: 15_000 });
    // widget.js came with a token the server signed for the host page's site, and the loader handed it to the frame.
    const token = readSiteToken(await frame.evaluate(() => location.hash));
    expect(new SiteTokens({ dataDir: server.dataDir, clock: systemClock }).verify(token ?? undefined)).toBe(hostUrl);
    expect(await page.evaluate(() => globalThis.crossOriginIsolated)).toBe(true);

    // The frame has drawn its offer: start-up ran (a remembered opt-in would have started the work by now).
    await frame.waitForSelector('#opt-in:enabled', { timeout: 15_000 });
    // A job made while the card sits unclicked is there to take: a headless worker computes all of it, and the
    // frame never said hello (the only worker that joined is the headless one) and took none of its replicas.
    const joined: string[] = [];
    const onJoin = (id: string) => { joined.push(server.app.workers.get(id)?.kind ?? 'unknown'); };
    server.app.events.on('worker:joined', onJoin);
    const { job: idleJob } = await job(2, 11);
    const headless = startWorkers(server.url, 1, 1);
    try {
      expect((await api.waitJob(idleJob.id, undefined, 100)).status).toBe('completed');
    } finally {
      await headless.stop();
      server.app.events.off('worker:joined', onJoin);
    }
    expect(joined).toEqual(['node']);
    const res = await fetch(`${server.url}/api/v1/jobs/${idleJob.id}/replicas`, { headers: { authorization: `Bearer ${server.apiKey}` } });
    const { replicas } = await res.json() as { replicas: { workerId: string }[] };
    expect(replicas.length).toBeGreaterThan(0);
    expect(new Set(replicas.map((r) => r.workerId)).size).toBe(1);
    expect(await status()).toMatchObject({ started: false, connected: false, state: 'idle', tasksDone: 0, site: hostUrl });
    // Nor did it connect, fetch a model or load the runtime (that starts with the click).
    expect(requests.filter((u) => u.includes('/socket.io/') || u.includes('/models/') || u.includes('/ort/'))).toEqual([]);
    expect(await frame.isVisible('#opt-in')).toBe(true);
    expect(await frame.textContent('#offer-throttle')).toBe(`${THROTTLE}%`);
  });

  it('opts in with one click, computes a throttled job with correct outputs, and credits the volunteer and the site', async () => {
    const { job: created, x } = await job(TASKS, 12);
    await frame.click('#opt-in');

    // Measure the duty cycle mid-job, once the model is loaded: busy time over wall time, in the frame.
    // First at the site's default (50%), then after the volunteer moves the slider to 25%.
    const measure = async (from: number, to: number) => {
      await frame.waitForFunction((n) => window.tabgrid!.status().tasksDone >= n, from, { timeout: 60_000 });
      const a = await frame.evaluate(() => ({ t: performance.now(), busy: window.tabgrid!.status().timing.busyMs }));
      await frame.waitForFunction((n) => window.tabgrid!.status().tasksDone >= n, to, { timeout: 60_000 });
      const b = await frame.evaluate(() => ({ t: performance.now(), busy: window.tabgrid!.status().timing.busyMs }));
      const { last, throttle } = await status().then((st) => ({ last: st.timing.last!, throttle: st.throttle }));
      const fraction = (b.busy - a.busy) / (b.t - a.t);
      console.info(`widget tab at N=${throttle}%: busy fraction ${fraction.toFixed(3)} over ${Math.round(b.t - a.t)} ms (tasks ${from}..${to}); `
        + `last task: wall ${last.wallMs.toFixed(1)} ms, run ${last.runMs.toFixed(1)} ms, idle ${last.idleMs?.toFixed(1)} ms`);
      return fraction;
    };
    // Timers fire late on a loaded machine (the whole suite shares two cores), which only lengthens rests.
    const at50 = await measure(3, 13);
    expect(at50).toBeGreaterThan(0.33);
    expect(at50).toBeLessThan(0.53);
    await frame.fill('#throttle', '25');
    expect(await frame.textContent('#throttle-value')).toBe('25%');
    const at25 = await measure(15, 23);
    expect(at25).toBeGreaterThan(0.16);
    expect(at25).toBeLessThan(0.28);

    const done = await api.waitJob(created.id, undefined, 250);
    expect(done.status, JSON.stringify(done.failures)).toBe('completed');
    const got = npyTensor('y', await api.result(created.id, 'y'));
    const want = await reference(model, { x });
    expect(got.dims).toEqual([TASKS * BATCH, OUT]);
    expect(compareOutputs([got], [want.y!], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });

    const s = await status();
    expect(s).toMatchObject({ started: true, connected: true, tasksDone: TASKS, tasksFailed: 0, site: hostUrl, backend: 'wasm' });
    // A third-party frame in a fresh profile gets no storage (BROWSER-FACTS.md): the visit runs from memory.
    expect(s.persistent).toBe(false);
    // onnxruntime ran in the frame's inference worker (a cross-origin-isolated frame refuses a worker whose script
    // does not declare COEP too), with no problem reported.
    expect(page.workers().map((w) => w.url())).toEqual(expect.arrayContaining([expect.stringContaining('inference-worker')]));
    expect(await frame.evaluate(() => window.tabgrid!.errors())).toEqual([]);
    await frame.waitForFunction((n) => (window.tabgrid!.status().stats?.credit ?? 0) >= n, TASKS * BATCH, { timeout: 20_000 });
    const board = await (await fetch(`${server.url}/api/v1/leaderboard`)).json() as { sites: { origin: string; credit: number; tasks: number }[] };
    expect(board.sites).toContainEqual({ origin: hostUrl, credit: TASKS * BATCH, tasks: TASKS });
    const credit = (TASKS * BATCH).toLocaleString('en-US');
    await expect.poll(() => frame.textContent('#site-credit'), { timeout: 10_000 }).toContain(`site total ${credit}`);
    await expect.poll(() => frame.textContent('#credit')).toBe(credit);

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
  }, 120_000);

  it('Stop hands the task in flight back at once', async () => {
    const { job: created } = await job(20, 13);
    await frame.waitForFunction(() => window.tabgrid!.status().state === 'working' || window.tabgrid!.status().state === 'resting', undefined, { timeout: 20_000 });
    await frame.click('#stop');
    expect(await status()).toMatchObject({ started: false, connected: false, state: 'stopped' });
    // No lease is left to lapse: every replica this tab held is settled, returned or handed back.
    await expect.poll(async () => {
      const res = await fetch(`${server.url}/api/v1/jobs/${created.id}/replicas`, { headers: { authorization: `Bearer ${server.apiKey}` } });
      const { replicas } = await res.json() as { replicas: { status: string }[] };
      return replicas.filter((r) => r.status === 'leased').length;
    }, { timeout: 5_000 }).toBe(0);
    await frame.waitForSelector('#opt-in', { state: 'visible', timeout: 5_000 });
    expect((await api.getJob(created.id)).status).toBe('running');
    await api.cancelJob(created.id);
  });

  it('left the host page as it was: one global name, its own DOM unchanged, no errors', async () => {
    const added = await page.evaluate(() => {
      const before = new Set(JSON.parse(document.documentElement.dataset.globals!) as string[]);
      return Object.getOwnPropertyNames(window).filter((n) => !before.has(n) && !/^\d+$/.test(n));
    });
    expect(added).toEqual(['TabGrid']);
    const dom = await page.evaluate(async () => {
      const served = new DOMParser().parseFromString(await (await fetch(location.href)).text(), 'text/html');
      const now = document.body.cloneNode(true) as HTMLElement;
      const widgets = now.querySelectorAll('[data-tabgrid-widget]');
      for (const w of widgets) w.remove();
      return { widgets: widgets.length, same: now.innerHTML === served.body.innerHTML, errors: document.documentElement.dataset.errors };
    });
    expect(dom).toEqual({ widgets: 1, same: true, errors: '[]' });
    // The opt-in click asked for storage access and this fresh profile refused it: Chromium says so in the
    // console, from the frame. That is the only console output allowed.
    expect(storageRefusals.length).toBeGreaterThan(0);
    expect(storageRefusals.every((url) => url.startsWith(`${server.url}/`))).toBe(true);
    expect(problems.filter((p) => !p.startsWith('console.error: requestStorageAccess:'))).toEqual([]);
  });
});
