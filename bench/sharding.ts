/**
 * Sharding figures (issue 4): for S = 1..4 stages of PP-OCRv4 detection, the bytes each volunteer downloads
 * and the latency each added stage costs, as ratios against the whole model on one worker in the same run.
 *  - compute: the stages run in sequence with onnxruntime-node, tensors packed and unpacked between them as
 *    they travel, against the whole model's run (median of --runs).
 *  - end to end: one item through the real server with S headless workers (replicas 1, no canaries), from the
 *    job's creation to its completion as the REST API reports it (polled every 2 ms), against S = 1.
 * usage: npx tsx bench/sharding.ts [--runs 20] [--size 96]
 */
import fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { ApiClient } from '../cli/api-client.js';
import { writeNpy } from '../shared/npy.js';
import { packTensors, unpackTensors } from '../shared/tensor-pack.js';
import { partitionModel } from '../server/onnx/partition.js';
import { fromOrtTensor, toOrtTensor } from '../server/onnx/ort-tensors.js';
import { OCR_DET_MODEL, floatData } from '../test/helpers/models.js';
import { startTestServer } from '../test/helpers/server.js';
import { startWorkers } from '../test/helpers/workers.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg('runs', 20);
const SIZE = arg('size', 96);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

type Feeds = Record<string, ort.Tensor>;

async function timeRuns(run: () => Promise<unknown>): Promise<number> {
  await run();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return median(times);
}

const model = new Uint8Array(fs.readFileSync(OCR_DET_MODEL));
const x = new ort.Tensor('float32', new Float32Array(floatData(5, 3 * SIZE * SIZE).slice().buffer), [1, 3, SIZE, SIZE]);
const whole = await ort.InferenceSession.create(model);
const wholeMs = await timeRuns(() => whole.run({ x }));

const server = await startTestServer({ config: { shardAffinityMs: 600_000 } });
const api = new ApiClient(server.url, server.apiKey);
const m = await api.uploadModel(model);
const ds = await api.uploadDataset(writeNpy('float32', [1, 3, SIZE, SIZE], floatData(5, 3 * SIZE * SIZE)));

async function endToEnd(stages: number): Promise<number> {
  const workers = startWorkers(server.url, stages, 1);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const times: number[] = [];
    for (let i = 0; i < Math.max(3, Math.floor(RUNS / 4)); i++) {
      // Timed from the job's creation (the split and its check happen before that) to its completion.
      const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 1, replicas: 1, canaryRate: 0, stages });
      const t0 = performance.now();
      await api.waitJob(job.id, undefined, 2);
      times.push(performance.now() - t0);
    }
    return median(times);
  } finally {
    await workers.stop();
  }
}

const rows: string[] = [];
const e2e1 = await endToEnd(1);
for (let s = 1; s <= 4; s++) {
  const parts = s === 1 ? null : await partitionModel(model, { stages: s, probeDims: { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': SIZE, 'p2o.DynamicDimension.2': SIZE } });
  const sizes = parts ? parts.stages.map((p) => p.bytes.byteLength) : [model.byteLength];
  let pipeMs = wholeMs;
  let cutBytes = 0;
  if (parts) {
    const sessions = await Promise.all(parts.stages.map((p) => ort.InferenceSession.create(p.bytes)));
    pipeMs = await timeRuns(async () => {
      let feeds: Feeds = { x };
      cutBytes = 0;
      for (const sess of sessions) {
        const out = await sess.run(feeds);
        // What travels between volunteers: packed bytes, unpacked on the other side.
        const packed = packTensors(sess.outputNames.map((n) => fromOrtTensor(n, out[n])));
        cutBytes += packed.byteLength;
        feeds = Object.fromEntries(unpackTensors(packed).map((t) => [t.name, toOrtTensor(t.dtype, t.dims, t.data)]));
      }
    });
  }
  const e2e = s === 1 ? e2e1 : await endToEnd(s);
  const perStage = s === 1 ? 0 : (pipeMs - wholeMs) / (s - 1);
  const e2ePerStage = s === 1 ? 0 : (e2e - e2e1) / (s - 1);
  rows.push(`| ${s} | ${(Math.max(...sizes) / 2 ** 20).toFixed(2)} MiB (${(Math.max(...sizes) / model.byteLength).toFixed(2)}x) | ${(sizes.reduce((a, b) => a + b, 0) / s / 2 ** 20).toFixed(2)} MiB | ${(cutBytes / 1024).toFixed(0)} KiB | ${pipeMs.toFixed(1)} ms (${(pipeMs / wholeMs).toFixed(2)}x) | ${perStage.toFixed(1)} ms (${(perStage / wholeMs * 100).toFixed(1)}%) | ${e2e.toFixed(0)} ms (${(e2e / e2e1).toFixed(2)}x) | ${e2ePerStage.toFixed(0)} ms |`);
}
await server.close();
process.stdout.write([
  `PP-OCRv4 detection, input 1x3x${SIZE}x${SIZE}; whole model ${(model.byteLength / 2 ** 20).toFixed(2)} MiB, ${wholeMs.toFixed(1)} ms a run (onnxruntime-node, median of ${RUNS})`,
  '',
  '| S | largest download per volunteer | mean download | bytes crossing cuts | compute, stages in sequence | added per stage (compute) | end to end, one item | added per stage (end to end) |',
  '|---|---|---|---|---|---|---|---|',
  ...rows,
  '',
].join('\n'));
