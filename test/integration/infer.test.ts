/**
 * Interactive inference end to end: the real server, headless workers (the real WorkLoop on onnxruntime-node)
 * vetted by a batch job first, and POST /api/v1/infer through the REST client and the CLI's `infer`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, TabGridClient } from '../../cli/api-client.js';
import { runInfer } from '../../cli/infer.js';
import { NodeRunner } from '../../cli/node-runner.js';
import { WorkLoop } from '../../client/net/work-loop.js';
import { compareOutputs } from '../../shared/compare.js';
import { type InferRun, TENSORS_CONTENT_TYPE } from '../../shared/infer.js';
import { packTensors, unpackTensors } from '../../shared/tensor-pack.js';
import { readNpy, writeNpy } from '../../shared/npy.js';
import type { Tensor } from '../../shared/tensor.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { loopbacks, reference, startWorkers } from '../helpers/workers.js';

const tol = { rtol: 1e-3, atol: 1e-4 };
const MODEL = mlpModel(4, 16, 3, 42);
const b64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
const fromB64 = (name: string, t: { dtype: string; dims: number[]; data: string }): Tensor =>
  ({ name, dtype: t.dtype as Tensor['dtype'], dims: t.dims, data: new Uint8Array(Buffer.from(t.data, 'base64')) });

/** A volunteer that computes batch tasks honestly and answers interactive requests with zeros. */
class LyingRunner extends NodeRunner {
  override async runInteractive(req: InferRun) {
    const honest = await super.runInteractive(req);
    return { ...honest, outputs: honest.outputs.map((t) => ({ ...t, data: new Uint8Array(t.data.byteLength) })) };
  }
}

describe('interactive inference', () => {
  let server: TestServer;
  let api: TabGridClient;
  let model: string;
  let workers: ReturnType<typeof startWorkers>;

  beforeAll(async () => {
    // Vetting takes two known answers and five confirmed results; a batch job with canaries gives them.
    server = await startTestServer({ config: { vetTenureMs: 0, auditRate: 0 } });
    api = new TabGridClient(server.url, server.apiKey);
    model = (await api.uploadModel(MODEL)).hash;
    workers = startWorkers(server.url, 2, 2, { bind: loopbacks });
    const x = (await api.uploadDataset(writeNpy('float32', [400, 4], floatData(3, 1600)))).hash;
    const job = await api.createJob({ model, inputs: { x }, batchSize: 4, replicas: 2, canaryRate: 0.1 });
    expect((await api.waitJob(job.id, undefined, 50)).status).toBe('completed');
  }, 120_000);
  afterAll(async () => {
    await workers?.stop();
    await server?.close();
  });

  it('answers from a vetted volunteer\'s warm session with onnxruntime-node\'s outputs, saying how it was trusted', async () => {
    const x = floatData(9, 2 * 4);
    const answer = await api.infer({ model, inputs: { x: { dtype: 'float32', dims: [2, 4], data: b64(x) } } });
    const want = await reference(MODEL, { x: writeNpy('float32', [2, 4], x) });
    expect(answer.verified).toBe('vetted-volunteer');
    expect(compareOutputs([fromB64('y', answer.outputs.y!)], [want.y!], tol)).toEqual({ verdict: 'agree' });
    expect(workers.loops.reduce((n, l) => n + l.status.interactiveServed, 0)).toBeGreaterThanOrEqual(1);
  });

  it('with replicas 2, answers when two volunteers of distinct origins agree', async () => {
    const x = floatData(10, 4);
    const answer = await api.infer({ model, replicas: 2, inputs: { x: { dtype: 'float32', dims: [1, 4], data: b64(x) } } });
    expect(answer.verified).toBe('two-origins');
    const want = await reference(MODEL, { x: writeNpy('float32', [1, 4], x) });
    expect(compareOutputs([fromB64('y', answer.outputs.y!)], [want.y!], tol)).toEqual({ verdict: 'agree' });
  });

  it('refuses inputs that do not fit the model (400), unknown models (404) and malformed bodies, before any worker sees them', async () => {
    const served = workers.loops.reduce((n, l) => n + l.status.interactiveServed, 0);
    const bad = (body: object) => api.infer(body as never).then(() => null, (e: ApiError) => [e.status, e.code]);
    expect(await bad({ model, inputs: { x: { dtype: 'float32', dims: [1, 5], data: b64(floatData(1, 5)) } } })).toEqual([400, 'SHAPE_MISMATCH']);
    expect(await bad({ model, inputs: { x: { dtype: 'int64', dims: [1, 4], data: b64(new Uint8Array(32)) } } })).toEqual([400, 'SHAPE_MISMATCH']);
    expect(await bad({ model, inputs: { x: { dtype: 'float32', dims: [1, 4], data: b64(new Uint8Array(12)) } } })).toEqual([400, 'SHAPE_MISMATCH']);
    expect(await bad({ model: 'f'.repeat(64), inputs: { x: { dtype: 'float32', dims: [1, 4], data: b64(new Uint8Array(16)) } } })).toEqual([404, 'NOT_FOUND']);
    expect(await bad({ model, inputs: 'nope' })).toEqual([400, 'INVALID_PAYLOAD']);
    expect(workers.loops.reduce((n, l) => n + l.status.interactiveServed, 0)).toBe(served);
  });

  it('takes and gives large tensors packed (the binary variant), and refuses a malformed packed body', async () => {
    const x = floatData(13, 2 * 4);
    const body = packTensors([{ name: 'x', dtype: 'float32', dims: [2, 4], data: x }]);
    const res = await fetch(`${server.url}/api/v1/infer?model=${model}&replicas=1`, {
      method: 'POST', body: Buffer.from(body),
      headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': TENSORS_CONTENT_TYPE, accept: TENSORS_CONTENT_TYPE },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain(TENSORS_CONTENT_TYPE);
    expect(res.headers.get('x-tabgrid-verified')).toBe('vetted-volunteer');
    const [y] = unpackTensors(new Uint8Array(await res.arrayBuffer()));
    const want = await reference(MODEL, { x: writeNpy('float32', [2, 4], x) });
    expect(compareOutputs([y!], [want.y!], tol)).toEqual({ verdict: 'agree' });

    const broken = await fetch(`${server.url}/api/v1/infer?model=${model}`, {
      method: 'POST', body: Buffer.from(body.subarray(0, body.byteLength - 3)), headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': TENSORS_CONTENT_TYPE },
    });
    expect(broken.status).toBe(400);
    expect(((await broken.json()) as { error: { code: string } }).error.code).toBe('INVALID_PAYLOAD');
  });

  it('tabgrid infer prints the latency, p50/p95 with --repeat, and writes the outputs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-infer-'));
    try {
      const x = writeNpy('float32', [3, 4], floatData(11, 12));
      fs.writeFileSync(path.join(dir, 'x.npy'), x);
      fs.writeFileSync(path.join(dir, 'model.onnx'), MODEL);
      const lines: string[] = [];
      const { files } = await runInfer(api, path.join(dir, 'model.onnx'), { inputs: path.join(dir, 'x.npy'), out: path.join(dir, 'out'), repeat: 10 }, (s) => lines.push(s));
      expect(lines.join('\n')).toMatch(/10 requests: p50 [\d.]+ ms, p95 [\d.]+ ms/);
      const got = readNpy(new Uint8Array(fs.readFileSync(files[0]!)));
      const want = await reference(MODEL, { x });
      expect(compareOutputs([{ name: 'y', dtype: got.dtype, dims: got.shape, data: got.data }], [want.y!], tol)).toEqual({ verdict: 'agree' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a volunteer whose interactive answer the server\'s audit refutes is quarantined', async () => {
    const own = await startTestServer({ config: { vetTenureMs: 0, auditRate: 1 } });
    const ownApi = new TabGridClient(own.url, own.apiKey);
    const liar = new LyingRunner();
    const loop = new WorkLoop({ serverUrl: own.url, slots: 2, runner: liar, hello: { kind: 'node', backends: ['cpu'] }, bind: loopbacks(5) });
    const honest = startWorkers(own.url, 1, 2, { bind: (i) => loopbacks(6 + i) });
    loop.start();
    try {
      const m = (await ownApi.uploadModel(MODEL)).hash;
      const x = (await ownApi.uploadDataset(writeNpy('float32', [400, 4], floatData(4, 1600)))).hash;
      const job = await ownApi.createJob({ model: m, inputs: { x }, batchSize: 4, replicas: 2, canaryRate: 0.1 });
      expect((await ownApi.waitJob(job.id, undefined, 50)).status).toBe('completed');
      honest.loops[0]!.stop();
      // Only the liar is left to answer: its zeros go out (audits never delay an answer), and the audit catches them.
      await ownApi.infer({ model: m, inputs: { x: { dtype: 'float32', dims: [1, 4], data: b64(floatData(12, 4)) } } });
      await expect.poll(async () => (await (await fetch(`${own.url}/api/v1/volunteers`, { headers: { authorization: `Bearer ${own.apiKey}` } })).json() as
        { volunteers: { id: string; quarantinedAt: number | null }[] }).volunteers.find((v) => v.id === loop.status.volunteerId)?.quarantinedAt ?? null,
      { timeout: 10_000 }).not.toBeNull();
      // Quarantined: it answers no more.
      const after = await ownApi.infer({ model: m, inputs: { x: { dtype: 'float32', dims: [1, 4], data: b64(floatData(12, 4)) } } }).then(() => null, (e: ApiError) => e.status);
      expect(after).toBe(503);
    } finally {
      loop.stop();
      await liar.close();
      await honest.stop();
      await own.close();
    }
  }, 120_000);
});
