/**
 * NodeRunner's interactive sessions against real models in onnxruntime-node: outputs equal a direct run of the
 * same model, sessions kept apart from batch ones (cooling one leaves the other), a warm model is not fetched again,
 * and an interactive request takes the slot before a batch run that was asked for in the same turn.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { InferRun } from '../shared/infer.js';
import type { TaskAssignment } from '../shared/protocol.js';
import { floatData, mlpModel, twoInputModel } from '../test/helpers/models.js';
import { NodeRunner } from './node-runner.js';

const MLP = 'a'.repeat(64);
const TWO = 'b'.repeat(64);
const models: Record<string, Uint8Array> = { [MLP]: mlpModel(4, 8, 3), [TWO]: twoInputModel() };
const fetched: string[] = [];
let server: http.Server;
let base = '';

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const hash = (req.url ?? '').split('/').pop()!;
    fetched.push(hash);
    const bytes = models[hash];
    if (!bytes) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.from(bytes));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function request(requestId: string, x: Uint8Array, hash = MLP): InferRun {
  return { requestId, modelHash: hash, modelUrl: base + hash, inputs: [{ name: 'x', dtype: 'float32', dims: [x.byteLength / 16, 4], data: x }] };
}

function task(replicaId: string, x: Uint8Array): TaskAssignment {
  return { replicaId, taskId: replicaId, jobId: 'j', modelHash: MLP, modelUrl: base + MLP, inputs: [{ name: 'x', dtype: 'float32', dims: [x.byteLength / 16, 4], data: x }], leaseMs: 60_000 };
}

async function direct(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(model);
  const out = await session.run(feeds);
  const res = Object.fromEntries(session.outputNames.map((n) => [n, out[n]!.data as Float32Array]));
  await session.release();
  return res;
}

const floats = (d: Uint8Array) => new Float32Array(d.slice().buffer);

describe('NodeRunner interactive sessions', () => {
  it('answers what a direct onnxruntime-node run of the model gives', async () => {
    const runner = new NodeRunner();
    const x = floatData(7, 5 * 4);
    const out = await runner.runInteractive(request('q1', x));
    const want = await direct(models[MLP]!, { x: new ort.Tensor('float32', floats(x), [5, 4]) });
    expect(out.backend).toBe('cpu');
    expect(out.runMs).toBeGreaterThanOrEqual(0);
    expect(out.outputs.map((t) => [t.name, t.dtype, t.dims])).toEqual([['y', 'float32', [5, 3]]]);
    expect(Array.from(floats(out.outputs[0]!.data))).toEqual(Array.from(want.y!));

    const a = floatData(1, 2 * 4);
    const b = floatData(2, 2 * 4);
    const two = await runner.runInteractive({
      requestId: 'q2', modelHash: TWO, modelUrl: base + TWO,
      inputs: [{ name: 'a', dtype: 'float32', dims: [2, 4], data: a }, { name: 'b', dtype: 'float32', dims: [2, 4], data: b }],
    });
    const wantTwo = await direct(models[TWO]!, { a: new ort.Tensor('float32', floats(a), [2, 4]), b: new ort.Tensor('float32', floats(b), [2, 4]) });
    expect(two.outputs.map((t) => t.name)).toEqual(['sum', 'prod']);
    expect(Array.from(floats(two.outputs[1]!.data))).toEqual(Array.from(wantTwo.prod!));
    await runner.close();
  });

  it('keeps interactive sessions apart from batch ones: warm once, cooled alone, a failure told', async () => {
    const runner = new NodeRunner();
    fetched.length = 0;
    const warm = await runner.warmInteractive(MLP, base + MLP);
    expect(warm.backend).toBe('cpu');
    expect(warm.warmMs).toBeGreaterThan(0);
    await runner.runInteractive(request('q1', floatData(3, 4)));
    expect(fetched).toEqual([MLP]); // warm: not fetched again for the request
    await runner.run(task('r1', floatData(3, 4)), base + MLP);
    expect(fetched).toEqual([MLP, MLP]); // the batch session is its own
    runner.coolInteractive(MLP);
    await runner.run(task('r2', floatData(3, 4)), base + MLP);
    expect(fetched).toEqual([MLP, MLP]); // cooling the interactive one left the batch one
    await runner.runInteractive(request('q2', floatData(3, 4)));
    expect(fetched).toEqual([MLP, MLP, MLP]); // and the interactive one was made afresh
    await expect(runner.runInteractive({ ...request('q3', floatData(3, 4)), inputs: [{ name: 'x', dtype: 'float32', dims: [1, 5], data: floatData(3, 5) }] }))
      .rejects.toThrow(/dimensions|Got invalid/i);
    await expect(runner.runInteractive(request('q4', floatData(3, 4), 'c'.repeat(64)))).rejects.toThrow(/HTTP 404/);
    await runner.close();
  });

  it('runs an interactive request before a batch run asked for in the same turn (the very next slot)', async () => {
    const runner = new NodeRunner();
    await runner.warmInteractive(MLP, base + MLP);
    await runner.run(task('r0', floatData(1, 4)), base + MLP); // both sessions loaded
    const order: string[] = [];
    const batch = runner.run(task('r1', floatData(1, 64 * 4)), base + MLP).then(() => order.push('batch'));
    const infer = runner.runInteractive(request('q1', floatData(2, 4))).then(() => order.push('interactive'));
    await Promise.all([batch, infer]);
    expect(order).toEqual(['interactive', 'batch']);
    await runner.close();
  });
});

describe('NodeRunner warm-up', () => {
  it('reaches the server once before any task, and a server that does not answer holds the worker 2 s at most', async () => {
    const before = fetched.length;
    await new NodeRunner().warmUp(`${base}/warm`);
    expect(fetched.slice(before)).toEqual(['warm']);

    const silent = http.createServer(() => {}); // takes the request and never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const t0 = performance.now();
      await new NodeRunner().warmUp(`http://127.0.0.1:${(silent.address() as AddressInfo).port}/`);
      expect(performance.now() - t0).toBeLessThan(5_000);
      await new NodeRunner().warmUp('http://127.0.0.1:1/'); // refused: not an error either
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });
});

describe('NodeRunner threads', () => {
  it('makes its sessions, batch and interactive, with the threads asked for, and computes the same outputs', async () => {
    const create = vi.spyOn(ort.InferenceSession, 'create');
    try {
      const x = floatData(11, 3 * 4);
      const one = new NodeRunner({ threads: 1 });
      const batch = await one.run(task('t1', x), base + MLP);
      const interactive = await one.runInteractive(request('q1', x));
      const plain = new NodeRunner();
      const fromDefault = await plain.run(task('t2', x), base + MLP);
      // One session each for the two runners' models (the warm-up model is not made here).
      expect(create.mock.calls.map((c) => c[1])).toEqual([{ intraOpNumThreads: 1 }, { intraOpNumThreads: 1 }, {}]);
      for (const out of [batch, interactive]) expect(floats(out.outputs[0]!.data as Uint8Array)).toEqual(floats(fromDefault.outputs[0]!.data as Uint8Array));
      await Promise.all([one.close(), plain.close()]);
    } finally {
      create.mockRestore();
    }
  });
});
