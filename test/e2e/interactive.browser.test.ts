// @vitest-environment node
/**
 * The volunteer page answers interactive requests: real Chromium on the built page, the real server. The page is
 * vetted by a batch job it computes with a headless worker of another origin; the headless worker then leaves, so
 * POST /api/v1/infer can only be answered by the page's interactive worker. Answers must match onnxruntime-node's,
 * and the page must say how many it served. Any page error or console error fails the test.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TabGridClient } from '../../cli/api-client.js';
import type { TabgridPage } from '../../client/volunteer/page-api.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import type { Tensor } from '../../shared/tensor.js';
import { launchChromium, watchProblems } from '../helpers/browser.js';
import { ensureClientBuilt } from '../helpers/build-client.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { loopbacks, reference, startWorkers } from '../helpers/workers.js';

declare global {
  interface Window { tabgrid?: TabgridPage }
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCREENSHOT = path.join(ROOT, 'test-results', 'volunteer-interactive.png');
const MODEL = mlpModel(4, 16, 3, 42);
const tol = { rtol: 1e-3, atol: 1e-4 };
const b64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

describe('volunteer page, interactive requests (Chromium, real server)', () => {
  let server: TestServer;
  let api: TabGridClient;
  let browser: Browser;
  let page: Page;
  let problems: string[];
  let model: string;

  beforeAll(async () => {
    await ensureClientBuilt();
    server = await startTestServer({ config: { vetTenureMs: 0, auditRate: 0 } });
    api = new TabGridClient(server.url, server.apiKey);
    model = (await api.uploadModel(MODEL)).hash;
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage();
    problems = watchProblems(page);
    await page.goto(`${server.url}/?autostart=1&backend=wasm`);
    await page.waitForFunction(() => window.tabgrid?.status().connected === true, undefined, { timeout: 30_000 });
    // Vetting takes known answers and confirmed results: a batch job with canaries, the page and one headless
    // worker of another origin agreeing on every task.
    const headless = startWorkers(server.url, 1, 2, { bind: (i) => loopbacks(i + 5) });
    try {
      const x = (await api.uploadDataset(writeNpy('float32', [200, 4], floatData(3, 800)))).hash;
      const job = await api.createJob({ model, inputs: { x }, batchSize: 4, replicas: 2, canaryRate: 0.1 });
      expect((await api.waitJob(job.id, undefined, 100)).status).toBe('completed');
    } finally {
      await headless.stop();
    }
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('answers from the page\'s interactive worker with onnxruntime-node\'s outputs, and the page counts them', async () => {
    expect(await page.evaluate(() => window.tabgrid!.status().interactiveServed)).toBe(0);
    const added: number[] = [];
    for (let i = 0; i < 5; i++) {
      const x = floatData(20 + i, 2 * 4);
      const answer = await api.infer({ model, inputs: { x: { dtype: 'float32', dims: [2, 4], data: b64(x) } } });
      expect(answer.backend).toBe('wasm');
      added.push(answer.ms - answer.runMs);
      const want = await reference(MODEL, { x: writeNpy('float32', [2, 4], x) });
      const y = answer.outputs.y!;
      const got: Tensor = { name: 'y', dtype: 'float32', dims: y.dims, data: new Uint8Array(Buffer.from(y.data, 'base64')) };
      expect(compareOutputs([got], [want.y!], tol)).toEqual({ verdict: 'agree' });
    }
    await page.waitForFunction(() => window.tabgrid!.status().interactiveServed >= 5);
    await page.waitForFunction(() => document.getElementById('interactive-served')?.textContent === '5');
    expect(await page.getAttribute('#interactive-served', 'title')).toMatch(/1 model kept ready/);
    // The first request loads the model in the interactive worker (no infer:warm came before it); the rest are warm.
    console.log(`page, interactive requests: server-measured time beyond the model's run ${added.map((ms) => ms.toFixed(1)).join(', ')} ms`);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(problems).toEqual([]);
  }, 120_000);
});
