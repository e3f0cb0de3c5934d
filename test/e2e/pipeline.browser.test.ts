// @vitest-environment node
/**
 * A three-stage pipeline job in three Chromium tabs: each tab downloads and runs only its own shard, and the
 * job's outputs equal onnxruntime-node's run of the whole model.
 */
import fs from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import { launchChromium, watchProblems } from '../helpers/browser.js';
import { ensureClientBuilt } from '../helpers/build-client.js';
import { OCR_DET_MODEL, floatData } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { npyTensor, reference } from '../helpers/workers.js';

let server: TestServer;
let browser: Browser;

beforeAll(async () => {
  await ensureClientBuilt();
  // A long affinity window: a stage waits for the tab that holds its shard.
  server = await startTestServer({ config: { shardAffinityMs: 600_000 } });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

it('runs a three-stage job across three tabs, each fetching only its shard', async () => {
  const tabs: { page: Page; problems: string[]; shards: Set<string> }[] = [];
  for (let i = 0; i < 3; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const shards = new Set<string>();
    page.on('request', (req) => {
      const m = /\/models\/([0-9a-f]{64})$/.exec(req.url());
      if (m) shards.add(m[1]);
    });
    const problems = watchProblems(page);
    await page.goto(`${server.url}/?autostart=1&backend=wasm`);
    await page.waitForFunction(() => (window as unknown as { tabgrid?: { status(): { connected: boolean } } }).tabgrid?.status().connected === true);
    tabs.push({ page, problems, shards });
  }
  const api = new ApiClient(server.url, server.apiKey);
  const model = new Uint8Array(fs.readFileSync(OCR_DET_MODEL));
  const x = writeNpy('float32', [3, 3, 64, 64], floatData(23, 3 * 3 * 64 * 64));
  const m = await api.uploadModel(model);
  const ds = await api.uploadDataset(x);
  const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 1, replicas: 1, canaryRate: 0, stages: 3 });
  const end = await api.waitJob(job.id, undefined, 200);
  expect(end.status).toBe('completed');
  const name = m.outputs[0].name;
  const want = await reference(model, { x });
  expect(compareOutputs([npyTensor(name, await api.result(job.id, name))], [want[name]], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });
  // Each tab fetched one shard, and between them all three.
  expect(tabs.map((t) => t.shards.size)).toEqual([1, 1, 1]);
  expect(new Set(tabs.flatMap((t) => [...t.shards]))).toEqual(new Set(job.stages.map((s) => s.model)));
  for (const t of tabs) expect(t.problems).toEqual([]);
});
