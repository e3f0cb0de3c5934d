/**
 * Fuzzing: over a thousand random and malformed socket events and HTTP requests. Every one gets a typed
 * answer, the server stays up, and a job running alongside completes with correct outputs.
 */
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { compareOutputs } from '../../shared/compare.js';
import { ErrorCode } from '../../shared/errors.js';
import { writeNpy } from '../../shared/npy.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { npyTensor, reference, startWorkers } from '../helpers/workers.js';

const CODES = new Set<string>(Object.values(ErrorCode));
let server: TestServer;

beforeAll(async () => { server = await startTestServer({ config: { leaseMs: 2000, sweepMs: 100 } }); });
afterAll(async () => { await server?.close(); });

function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  return { next, int, pick };
}

type R = ReturnType<typeof rng>;

/** A random JSON-ish value, sometimes binary, sometimes deeply nested. */
function junk(r: R, depth = 0): unknown {
  switch (r.int(depth > 2 ? 7 : 10)) {
    case 0: return null;
    case 1: return r.pick([0, -1, 1e308, -1e308, 2 ** 53, NaN, 0.5, 17]);
    case 2: return r.pick(['', 'x', 'a'.repeat(5000), '💥', '__proto__', 'r-123', 'float32']);
    case 3: return r.next() < 0.5;
    case 4: return new Uint8Array(r.int(64));
    case 5: return undefined;
    case 6: return [];
    case 7: return Array.from({ length: r.int(4) }, () => junk(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < r.int(5); i++) o[r.pick(['slots', 'replicaId', 'outputs', 'kind', 'backends', 'token', 'name', 'dtype', 'dims', 'data', 'x'])] = junk(r, depth + 1);
      return o;
    }
  }
}

/** A result that looks almost right: truncated data, wrong dtype, odd dims, unknown or foreign replica ids. */
function nearResult(r: R, replicaIds: string[]): unknown {
  const bad = [
    { name: 'y', dtype: 'float32', dims: [1, 3], data: new Uint8Array(r.int(12)) },
    { name: 'y', dtype: r.pick(['float16', 'complex64', 'int4', 'FLOAT']), dims: [1, 3], data: new Uint8Array(12) },
    { name: 'y', dtype: 'float32', dims: [-1, 3], data: new Uint8Array(12) },
    { name: 'y', dtype: 'float32', dims: [2 ** 31, 2 ** 31], data: new Uint8Array(12) },
    { name: 'zz', dtype: 'int64', dims: [1, 3], data: new Uint8Array(24) },
    { name: 'y', dtype: 'float32', dims: [1, 3], data: Array.from({ length: 3 }, () => 1) },
  ];
  return { replicaId: replicaIds.length && r.next() < 0.6 ? r.pick(replicaIds) : `r-${r.int(1e9)}`, backend: 'cpu', runMs: r.pick([1, -5, 1e12]), outputs: [r.pick(bad)] };
}

it('answers a thousand malformed events and requests with typed errors while a job completes correctly', async () => {
  const api = new ApiClient(server.url, server.apiKey);
  const model = mlpModel(4, 8, 3, 21);
  const x = writeNpy('float32', [40, 4], floatData(4, 160));
  const m = await api.uploadModel(model);
  const ds = await api.uploadDataset(x);
  const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 2, replicas: 2 });
  const workers = startWorkers(server.url, 3, 2);
  const r = rng(12345);
  const sockets: Socket[] = [];
  const answers: unknown[] = [];
  const seenReplicas: string[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const s = connect(server.url, { transports: ['websocket'], forceNew: true, reconnection: false });
      await new Promise<void>((resolve) => s.on('connect', () => resolve()));
      if (i % 2 === 0) await s.emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] });
      s.on('task:assign', (tasks: { replicaId: string }[]) => seenReplicas.push(...tasks.map((t) => t.replicaId)));
      sockets.push(s);
    }
    const events = ['worker:hello', 'work:request', 'task:result', 'task:error', 'task:release', 'volunteer:profile', 'volunteer:stats'];
    for (let i = 0; i < 800; i++) {
      const s = sockets[i % sockets.length];
      const event = r.pick(events);
      const payload = event === 'task:result' && r.next() < 0.5 ? nearResult(r, seenReplicas) : junk(r);
      const res = await s.timeout(5000).emitWithAck(event, payload);
      answers.push(res);
      const got = res as { ok?: boolean; tasks?: { replicaId: string }[]; error?: { code: string } };
      expect(typeof got.ok).toBe('boolean');
      if (!got.ok) expect(CODES.has(got.error!.code)).toBe(true);
      if (got.tasks) seenReplicas.push(...got.tasks.map((t) => t.replicaId));
      // Events nobody handles are ignored, never fatal.
      if (i % 50 === 0) s.emit(`nonsense:${i}`, junk(r));
    }
    const paths = ['/api/v1/jobs', `/api/v1/jobs/${job.id}`, '/api/v1/models', '/api/v1/datasets', `/api/v1/jobs/${job.id}/cancel-not`,
      '/api/v1/jobs/%00', `/api/v1/jobs/${job.id}/results/y`, '/api/v1/keys', '/models/zz', `/models/${'f'.repeat(64)}`, '/api/v1/nope'];
    for (let i = 0; i < 300; i++) {
      const method = r.pick(['GET', 'POST', 'PUT', 'DELETE']);
      const headers: Record<string, string> = { 'content-type': r.pick(['application/json', 'application/octet-stream', 'text/plain']) };
      if (r.next() < 0.5) headers.authorization = r.pick([`Bearer ${server.apiKey}`, 'Bearer nope', 'Basic x', '']);
      const body = method === 'GET' ? undefined : r.pick(['{', '{"model": 5}', JSON.stringify(junk(r)), 'null', '[]', '\u0000\u0001']);
      const res = await fetch(`${server.url}${r.pick(paths)}`, { method, headers, body });
      expect(res.status).toBeLessThan(500);
      if (res.status >= 400 && res.headers.get('content-type')?.includes('json')) {
        const b = await res.json() as { error?: { code: string } };
        if (b.error) expect(CODES.has(b.error.code)).toBe(true);
      } else await res.arrayBuffer();
    }
    expect(answers.length + 300).toBeGreaterThanOrEqual(1000);
    const end = await api.waitJob(job.id, undefined, 100);
    expect(end.status).toBe('completed');
    const want = await reference(model, { x });
    expect(compareOutputs([npyTensor('y', await api.result(job.id, 'y'))], [want.y], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });
    expect((await fetch(`${server.url}/api/v1/health`)).status).toBe(200);
  } finally {
    for (const s of sockets) s.disconnect();
    await workers.stop();
  }
}, 120_000);
