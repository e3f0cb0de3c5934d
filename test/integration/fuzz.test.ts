/**
 * Fuzzing: 800 random and malformed socket events and 300 HTTP requests while a job runs. Each acknowledged
 * event gets exactly one answer: INVALID_PAYLOAD for a payload the shared schema refuses, ok or a named
 * refusal (never INTERNAL) for one it accepts. Events without an ack, or that nobody handles, are dropped
 * without closing the connection. No request gets a 5xx and the API refuses by name. The server stays up and
 * the job completes with correct outputs.
 */
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { compareOutputs } from '../../shared/compare.js';
import { ErrorCode } from '../../shared/errors.js';
import { writeNpy } from '../../shared/npy.js';
import {
  profileSchema, releaseSchema, statsRequestSchema, taskErrorSchema, taskResultSchema, workRequestSchema, workerHelloSchema,
} from '../../shared/protocol.js';
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

/** The schema the server parses each worker event with: a payload it refuses must be answered INVALID_PAYLOAD. */
const SCHEMAS = {
  'worker:hello': workerHelloSchema, 'work:request': workRequestSchema, 'task:result': taskResultSchema, 'task:error': taskErrorSchema,
  'task:release': releaseSchema, 'volunteer:profile': profileSchema, 'volunteer:stats': statsRequestSchema,
} as const;
type FuzzedEvent = keyof typeof SCHEMAS;

/**
 * The payload as the server's handler receives it: socket.io sends JSON plus binary attachments, so
 * `undefined` members vanish (or become null in arrays and as the argument), NaN and infinities become null,
 * and bytes stay bytes.
 */
function onTheWire(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(onTheWire);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, onTheWire(x)]));
  }
  return v;
}

interface Sent { i: number; socket: number; event: FuzzedEvent; malformed: boolean; answers: unknown[] }
type Answer = { ok?: unknown; tasks?: { replicaId: string }[]; error?: { code?: unknown; message?: unknown } };

/** Resolves once every event in `sent` has an answer, or after `ms` (then the caller names those without one). */
function answered(sent: Sent[], ms: number): { wait: Promise<void>; onAnswer: () => void } {
  let resolve!: () => void;
  const wait = new Promise<void>((r) => { resolve = r; });
  const timer = setTimeout(resolve, ms);
  const onAnswer = () => {
    if (sent.every((e) => e.answers.length > 0)) { clearTimeout(timer); resolve(); }
  };
  return { wait, onAnswer };
}

it('answers every malformed event with one typed refusal and every refused API request with a typed error, while a job completes correctly', async () => {
  const api = new ApiClient(server.url, server.apiKey);
  const model = mlpModel(4, 8, 3, 21);
  const x = writeNpy('float32', [40, 4], floatData(4, 160));
  const m = await api.uploadModel(model);
  const ds = await api.uploadDataset(x);
  const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 2, replicas: 2 });
  const workers = startWorkers(server.url, 3, 2);
  const r = rng(12345);
  const sockets: Socket[] = [];
  const dropped: string[] = [];
  const sent: Sent[] = [];
  const seenReplicas: string[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const s = connect(server.url, { transports: ['websocket'], forceNew: true, reconnection: false });
      await new Promise<void>((resolve) => s.on('connect', () => resolve()));
      // Half the connections said hello (their events reach the handlers), half did not (refused UNAUTHORIZED past parsing).
      if (i % 2 === 0) await s.emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] });
      s.on('task:assign', (tasks: { replicaId: string }[]) => seenReplicas.push(...tasks.map((t) => t.replicaId)));
      s.on('disconnect', (reason) => dropped.push(`socket ${i}: ${reason}`));
      sockets.push(s);
    }
    const events = Object.keys(SCHEMAS) as FuzzedEvent[];
    // Bursts of events on all four connections at once, so that several land in one group commit.
    for (let round = 0; round < 100; round++) {
      const burst: Sent[] = [];
      const { wait, onAnswer } = answered(burst, 5000);
      for (let k = 0; k < 8; k++) {
        const socket = k % sockets.length;
        const event = r.pick(events);
        const payload = event === 'task:result' && r.next() < 0.5 ? nearResult(r, seenReplicas) : junk(r);
        const e: Sent = { i: sent.length, socket, event, malformed: !SCHEMAS[event].safeParse(onTheWire(payload)).success, answers: [] };
        sent.push(e);
        burst.push(e);
        sockets[socket]!.emit(event, payload, (res: unknown) => { e.answers.push(res); onAnswer(); });
      }
      // Events nobody handles, and known events sent without an ack, are dropped quietly, never fatal.
      if (round % 6 === 0) {
        sockets[round % sockets.length]!.emit(`nonsense:${round}`, junk(r));
        sockets[(round + 1) % sockets.length]!.emit(r.pick(events), junk(r));
      }
      await wait;
      const unanswered = burst.filter((e) => e.answers.length !== 1).map((e) => `#${e.i} ${e.event} on socket ${e.socket}: ${e.answers.length} answers`);
      expect(unanswered).toEqual([]);
      for (const e of burst) {
        const got = e.answers[0] as Answer;
        const what = `#${e.i} ${e.event}: ${JSON.stringify(got)}`;
        if (e.malformed) {
          expect(got.ok, what).toBe(false);
          expect(got.error?.code, what).toBe('INVALID_PAYLOAD');
        } else {
          expect(typeof got.ok, what).toBe('boolean');
          // A well-formed event from a socket that said no hello, or naming a replica it does not hold, is refused by name.
          if (got.ok === false) expect(CODES.has(String(got.error?.code)) && got.error?.code !== 'INTERNAL', what).toBe(true);
        }
        if (got.ok === false) expect(typeof got.error?.message, what).toBe('string');
        if (got.tasks) seenReplicas.push(...got.tasks.map((t) => t.replicaId));
      }
    }
    // The fuzz did fuzz: most events were malformed, and some well-formed ones got past parsing on both kinds of socket.
    const malformed = sent.filter((e) => e.malformed).length;
    expect(malformed).toBeGreaterThan(sent.length / 2);
    expect(sent.some((e) => !e.malformed && (e.answers[0] as Answer).ok === true)).toBe(true);
    expect(sent.some((e) => !e.malformed && (e.answers[0] as Answer).error?.code === 'UNAUTHORIZED')).toBe(true);
    // After all of it every connection is still open and still answers, in order after the unacknowledged events.
    expect(dropped).toEqual([]);
    for (const [i, s] of sockets.entries()) {
      const res = await s.timeout(5000).emitWithAck('volunteer:stats', {}) as Answer;
      expect(res.ok ? 'ok' : res.error?.code).toBe(i % 2 === 0 ? 'ok' : 'UNAUTHORIZED');
    }

    const paths = ['/api/v1/jobs', `/api/v1/jobs/${job.id}`, '/api/v1/models', '/api/v1/datasets', `/api/v1/jobs/${job.id}/cancel-not`,
      '/api/v1/jobs/%00', `/api/v1/jobs/${job.id}/results/y`, '/api/v1/keys', '/models/zz', `/models/${'f'.repeat(64)}`, '/api/v1/nope'];
    let apiRefusals = 0;
    for (let i = 0; i < 300; i++) {
      const method = r.pick(['GET', 'POST', 'PUT', 'DELETE']);
      const headers: Record<string, string> = { 'content-type': r.pick(['application/json', 'application/octet-stream', 'text/plain']) };
      if (r.next() < 0.5) headers.authorization = r.pick([`Bearer ${server.apiKey}`, 'Bearer nope', 'Basic x', '']);
      const body = method === 'GET' ? undefined : r.pick(['{', '{"model": 5}', JSON.stringify(junk(r)), 'null', '[]', '\u0000\u0001']);
      const path = r.pick(paths);
      const res = await fetch(`${server.url}${path}`, { method, headers, body });
      const what = `${method} ${path} -> ${res.status}`;
      expect(res.status, what).toBeLessThan(500);
      if (res.status >= 400 && path.startsWith('/api/')) {
        // The API refuses by name; only the static files' 404 outside it is express's own page.
        const b = await res.json() as { error?: { code?: unknown; message?: unknown } };
        expect(CODES.has(String(b.error?.code)) && b.error?.code !== 'INTERNAL', `${what}: ${JSON.stringify(b)}`).toBe(true);
        expect(typeof b.error?.message, what).toBe('string');
        apiRefusals++;
      } else await res.arrayBuffer();
    }
    expect(apiRefusals).toBeGreaterThan(100);

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
