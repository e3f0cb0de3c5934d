/**
 * Fair share between researchers through the real server: researcher A's big job submitted before researcher B's
 * small one does not hold it back; the two are served in turn, so the small one finishes first.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { writeNpy } from '../../shared/npy.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { startWorkers } from '../helpers/workers.js';

let server: TestServer;
beforeAll(async () => { server = await startTestServer(); });
afterAll(async () => { await server?.close(); });

it('finishes a small job of one researcher before a big job another researcher submitted first', async () => {
  const alice = new ApiClient(server.url, server.apiKey);
  const bob = new ApiClient(server.url, (await alice.createKey({ name: 'bob' })).key);
  const submit = async (api: ApiClient, items: number, seed: number) => {
    const model = await api.uploadModel(mlpModel(4, 8, 3, seed));
    const data = await api.uploadDataset(writeNpy('float32', [items, 4], floatData(seed, items * 4)));
    return api.createJob({ model: model.hash, inputs: { x: data.hash }, batchSize: 1, replicas: 1, canaryRate: 0 });
  };
  const big = await submit(alice, 300, 1);
  const small = await submit(bob, 10, 2);
  const workers = startWorkers(server.url, 2, 2);
  try {
    const smallEnd = await bob.waitJob(small.id, undefined, 20);
    const bigEnd = await alice.waitJob(big.id, undefined, 20);
    expect([smallEnd.status, bigEnd.status]).toEqual(['completed', 'completed']);
    expect(smallEnd.finishedAt!).toBeLessThan(bigEnd.finishedAt!);
  } finally {
    await workers.stop();
  }
}, 60_000);
