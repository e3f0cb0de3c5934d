/**
 * Interactive inference on a network of servers on one database: a request sent to a server that has no volunteer
 * to answer it is answered by the workers of another (passed on with the caller's own key), as JSON and packed; a
 * request another server passed on is answered there or refused, never passed on again.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { TabGridClient } from '../../cli/api-client.js';
import { compareOutputs } from '../../shared/compare.js';
import { TENSORS_CONTENT_TYPE } from '../../shared/infer.js';
import { writeNpy } from '../../shared/npy.js';
import { packTensors, unpackTensors } from '../../shared/tensor-pack.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { havePostgres } from '../helpers/pg-cluster.js';
import { serversOnOneDatabase } from '../helpers/pg-servers.js';
import type { TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';
import { type TestWorkers, loopbacks, reference, startWorkers } from '../helpers/workers.js';

const KEY = 'scale-out-infer-admin-key';
const MODEL = mlpModel(4, 16, 3, 43);
const tol = { rtol: 1e-3, atol: 1e-4 };
const b64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

describe.skipIf(!havePostgres())('interactive inference across servers on one database', () => {
  const servers = serversOnOneDatabase(2, { apiKey: KEY, vetTenureMs: 0, auditRate: 0 });
  let workers: TestWorkers | null = null;
  afterAll(async () => {
    await workers?.stop();
  });

  it('answers through a server with no workers, from the vetted workers of another', async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const api = new TabGridClient(a.url, KEY);
    const model = (await api.uploadModel(MODEL)).hash;
    // Vetting takes known answers and confirmed results: a batch job with canaries, computed by B's workers alone.
    workers = startWorkers(b.url, 2, 2, { bind: loopbacks });
    const x = (await api.uploadDataset(writeNpy('float32', [400, 4], floatData(3, 1600)))).hash;
    const job = await api.createJob({ model, inputs: { x }, batchSize: 4, replicas: 2, canaryRate: 0.1 });
    expect((await api.waitJob(job.id, undefined, 50)).status).toBe('completed');
    expect(a.app.workers.size).toBe(0);
    // Its known answers were computed by B, which took its tasks in, not by A, which created it and holds none of them.
    expect(job.tasks.canaries).toBeGreaterThan(0);
    expect({ a: a.app.serverRuns.stats.canaries, b: b.app.serverRuns.stats.canaries }).toEqual({ a: 0, b: job.tasks.canaries });
    await until(() => a.app.member?.peers().includes(b.url) === true);
    const served = () => workers!.loops.reduce((n, l) => n + l.status.interactiveServed, 0);

    const x1 = floatData(9, 2 * 4);
    const answer = await api.infer({ model, inputs: { x: { dtype: 'float32', dims: [2, 4], data: b64(x1) } } });
    expect(answer.verified).toBe('vetted-volunteer');
    const want1 = await reference(MODEL, { x: writeNpy('float32', [2, 4], x1) });
    const y = answer.outputs.y!;
    expect(compareOutputs([{ name: 'y', dtype: 'float32', dims: y.dims, data: new Uint8Array(Buffer.from(y.data, 'base64')) }], [want1.y!], tol)).toEqual({ verdict: 'agree' });
    expect(served()).toBe(1);

    // Packed, with replicas 2 (B's two workers are of distinct origins).
    const x2 = floatData(13, 3 * 4);
    const packed = await fetch(`${a.url}/api/v1/infer?model=${model}&replicas=2`, {
      method: 'POST', body: Buffer.from(packTensors([{ name: 'x', dtype: 'float32', dims: [3, 4], data: x2 }])),
      headers: { authorization: `Bearer ${KEY}`, 'content-type': TENSORS_CONTENT_TYPE, accept: TENSORS_CONTENT_TYPE },
    });
    expect(packed.status).toBe(200);
    expect(packed.headers.get('x-tabgrid-verified')).toBe('two-origins');
    const [y2] = unpackTensors(new Uint8Array(await packed.arrayBuffer()));
    const want2 = await reference(MODEL, { x: writeNpy('float32', [3, 4], x2) });
    expect(compareOutputs([y2!], [want2.y!], tol)).toEqual({ verdict: 'agree' });
    expect(served()).toBe(3);

    // What another server passed on is not passed on again: A, with no workers, refuses it.
    const passed = await fetch(`${a.url}/api/v1/infer`, {
      method: 'POST', body: JSON.stringify({ model, inputs: { x: { dtype: 'float32', dims: [1, 4], data: b64(floatData(2, 4)) } } }),
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'x-tabgrid-forwarded': '1' },
    });
    expect(passed.status).toBe(503);
    expect(((await passed.json()) as { error: { code: string } }).error.code).toBe('UNAVAILABLE');
    expect(served()).toBe(3);
  }, 120_000);
});
