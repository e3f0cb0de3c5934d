/**
 * Interactive inference: latency and throughput through the real server and headless workers, while batch jobs
 * keep the same workers busy; then workers behind added network delays, to show the router picks the near one.
 *
 *   npm run bench:infer -- [--workers 4] [--requests 300] [--concurrency 32] [--seconds 5]
 *
 * 1. `--workers` headless workers (the real WorkLoop on onnxruntime-node, in a process of their own, each from
 *    its own loopback address) are vetted by a batch job with known answers, then a stream of batch jobs keeps
 *    them busy (replicas 1, one-item tasks of the same model).
 * 2. Latency: `--requests` requests one after another (one item of a small dense model): added latency is the
 *    request's time at the client minus the model's own run on the worker that answered (`runMs` in the answer).
 *    Target: p50 under 10 ms, p95 under 40 ms.
 * 3. Throughput: `--concurrency` requests in flight for `--seconds`. Target: at least 300 requests/s.
 * 4. Three workers behind TCP proxies adding 10, 50 and 150 ms of round trip (no batch load): the share of
 *    requests each one answered.
 */
import path from 'node:path';
import type { InferRequest, InferResponse } from '../shared/infer.js';
import { denseChainModel, floatNpy } from './lib/models.js';
import { BENCH, Child, sleep } from './lib/proc.js';
import { fmt, machineLine, numericFlags, percentile, result, say } from './lib/report.js';
import { type BenchServer, JobFeeder, startServer, upload } from './lib/tabgrid.js';

const { n: opt } = numericFlags('npm run bench:infer --', {
  workers: { default: 4, min: 1, max: 16, help: 'headless workers' },
  requests: { default: 300, min: 20, max: 100_000, help: 'sequential requests for the latency figures' },
  concurrency: { default: 32, min: 1, max: 1_000, help: 'requests in flight for the throughput figure' },
  seconds: { default: 5, min: 1, max: 120, help: 'seconds of the throughput phase' },
});

const WIDTH = 16;
interface WorkerMark { served: number; tasks: number; connected: boolean }

async function post(server: BenchServer, req: InferRequest): Promise<InferResponse> {
  const res = await fetch(`${server.url}/api/v1/infer`, {
    method: 'POST', headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(req),
  });
  const body = await res.json() as InferResponse & { error?: { code: string; message: string } };
  if (!res.ok) throw new Error(`infer ${res.status}: ${body.error?.code} ${body.error?.message}`);
  return body;
}

/** Starts workers (with delays, in ms of round trip) and vets them with a batch job that has known answers. */
async function vettedWorkers(server: BenchServer, ids: { model: string; inputs: Record<string, string> }, specs: { delayMs: number; bind: string }[]): Promise<Child> {
  const child = new Child(path.join(BENCH, 'lib', 'infer-workers.ts'), [], { label: 'workers' });
  await child.ask({ type: 'start', url: server.url, workers: specs, slots: 2 });
  const job = await server.api.createJob({ model: ids.model, inputs: ids.inputs, batchSize: 4, replicas: 1, canaryRate: 0.1, name: 'vetting' });
  const end = await server.api.waitJob(job.id, undefined, 100);
  if (end.status !== 'completed') throw new Error(`the vetting job ended ${end.status}`);
  return child;
}

const request = (seed: number): InferRequest => {
  const x = floatNpy(1, WIDTH, seed).subarray(128);
  return { model: '', inputs: { x: { dtype: 'float32', dims: [1, WIDTH], data: Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64') } } };
};

say(`interactive inference: ${opt.workers} headless workers, dense ${WIDTH}x${WIDTH}, one item per request`);
say(`machine: ${machineLine()}`);
const server = await startServer();
let workers: Child | null = null;
let feeder: JobFeeder | null = null;
try {
  const ids = await upload(server.api, denseChainModel(WIDTH, 2), { x: floatNpy(800, WIDTH) });
  const base = request(1);
  const req = (seed: number): InferRequest => ({ ...request(seed), model: ids.model, timeoutMs: 10_000 });
  base.model = ids.model;
  workers = await vettedWorkers(server, ids, Array.from({ length: opt.workers }, (_, i) => ({ delayMs: 0, bind: `127.0.0.${2 + i}` })));
  const marks = async () => (await workers!.ask<{ type: string; workers: WorkerMark[] }>({ type: 'mark' })).workers;
  const tasksDone = async () => (await marks()).reduce((n, w) => n + w.tasks, 0);
  const tasks0 = await tasksDone();
  feeder = new JobFeeder(server.api, { model: ids.model, inputs: ids.inputs, items: 800, batchSize: 1, replicas: 1, adaptive: false, canaryRate: 0, name: 'batch load' },
    400, async () => (await tasksDone()) - tasks0);
  await feeder.start();
  for (let i = 0; i < 20; i++) await post(server, req(i));

  // Latency, one request after another, with the batch load running.
  const batch0 = await tasksDone();
  const added: number[] = [];
  const wall: number[] = [];
  const serverMs: number[] = [];
  let hedged = 0;
  const t0 = performance.now();
  for (let i = 0; i < opt.requests; i++) {
    const start = performance.now();
    const a = await post(server, req(100 + i));
    const ms = performance.now() - start;
    wall.push(ms);
    added.push(ms - a.runMs);
    serverMs.push(a.ms);
    if (a.hedged) hedged++;
  }
  const latencySeconds = (performance.now() - t0) / 1000;
  const batchPerSecond = ((await tasksDone()) - batch0) / latencySeconds;
  say(`latency (${opt.requests} requests in a row, batch load ${fmt.rate(batchPerSecond)} tasks/s on the same workers):`);
  say(`  added (request time minus the model's own run): p50 ${fmt.ms(percentile(added, 50))}, p95 ${fmt.ms(percentile(added, 95))} (targets 10 ms, 40 ms)`);
  say(`  request time p50 ${fmt.ms(percentile(wall, 50))}, p95 ${fmt.ms(percentile(wall, 95))}; in the server p50 ${fmt.ms(percentile(serverMs, 50))}; hedged ${hedged}`);

  // Throughput, `concurrency` in flight.
  let answered = 0;
  let failed = 0;
  const reasons = new Map<string, number>();
  const end = performance.now() + opt.seconds * 1000;
  const tp0 = performance.now();
  await Promise.all(Array.from({ length: opt.concurrency }, async (_, k) => {
    for (let i = 0; performance.now() < end; i++) {
      try {
        await post(server, req(10_000 + k * 100_000 + i));
        answered++;
      } catch (err) {
        failed++;
        const why = (err as Error).message.slice(0, 120);
        reasons.set(why, (reasons.get(why) ?? 0) + 1);
      }
    }
  }));
  const throughput = answered / ((performance.now() - tp0) / 1000);
  say(`throughput: ${fmt.rate(throughput)} requests/s with ${opt.concurrency} in flight (${failed} failed; target >= 300)`);
  for (const [why, n] of reasons) say(`  failed ${n}x: ${why}`);
  feeder.stop();
  await feeder.cancelAll();
  feeder = null;
  await workers.ask({ type: 'stop' });
  await workers.stop();

  // Near and far workers.
  const delays = [10, 50, 150];
  workers = await vettedWorkers(server, ids, delays.map((d, i) => ({ delayMs: d, bind: `127.0.0.${20 + i}` })));
  const before = await marks();
  const far: number[] = [];
  for (let i = 0; i < 20; i++) await post(server, req(500_000 + i));
  const warm = await marks();
  for (let i = 0; i < 200; i++) {
    const start = performance.now();
    await post(server, req(600_000 + i));
    far.push(performance.now() - start);
  }
  const after = await marks();
  const shares = after.map((w, i) => (w.served - warm[i]!.served) / 200);
  say(`near and far (round trips ${delays.join(', ')} ms added): share of 200 requests answered ${shares.map((s, i) => `${delays[i]} ms ${fmt.pct(s)}`).join(', ')}; `
    + `request time p50 ${fmt.ms(percentile(far, 50))} (warm-up: ${after.map((w, i) => warm[i]!.served - before[i]!.served).join('/')})`);

  result('infer', {
    workers: opt.workers, requests: opt.requests, concurrency: opt.concurrency,
    addedP50Ms: Number(percentile(added, 50).toFixed(2)), addedP95Ms: Number(percentile(added, 95).toFixed(2)),
    wallP50Ms: Number(percentile(wall, 50).toFixed(2)), wallP95Ms: Number(percentile(wall, 95).toFixed(2)), hedged,
    batchTasksPerSecond: Math.round(batchPerSecond), throughput: Math.round(throughput), failed,
    nearFar: Object.fromEntries(delays.map((d, i) => [`${d}ms`, Number(shares[i]!.toFixed(3))])), nearFarP50Ms: Number(percentile(far, 50).toFixed(1)),
  });
} finally {
  feeder?.stop();
  await feeder?.cancelAll();
  if (workers) { await workers.ask({ type: 'stop' }).catch(() => {}); await workers.stop(); }
  await sleep(100);
  await server.stop();
}
