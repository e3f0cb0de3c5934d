import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../shared/tensor.js';
import { systemClock } from '../scheduler/clock.js';
import type { WorkerEntry } from '../scheduler/task-picker.js';
import type { ModelRow } from '../store/store.js';
import { InferRouter, type WorkerLink } from './infer-router.js';

const MODEL: ModelRow = {
  hash: 'a'.repeat(64), size: 1, inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 2] }], outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 2] }],
  opsets: {}, weightBytes: 0, largestWeight: 0, createdAt: 0,
};
const x = (values: number[]) => ({ dtype: 'float32', dims: [1, 2], data: Buffer.from(new Float32Array(values).buffer).toString('base64') });
const y = (values: number[]): Tensor[] => [{ name: 'y', dtype: 'float32', dims: [1, 2], data: new Uint8Array(new Float32Array(values).buffer) }];
const values = (b64: string) => Array.from(new Float32Array(Uint8Array.from(Buffer.from(b64, 'base64')).buffer));
const request = (over: object = {}) => ({ model: MODEL.hash, inputs: { x: x([1, 2]) }, replicas: 1 as const, timeoutMs: 2_000, rtol: 1e-3, atol: 1e-4, ...over });

const worker = (id: string, origin: string, over: Partial<WorkerEntry> = {}): WorkerEntry => ({
  workerId: id, volunteerId: `v-${id}`, kind: 'node', backends: ['cpu'], connectedAt: 0, interactive: true, site: null, origin,
  demand: 0, adapterClass: '-|-', held: new Set(), limits: {}, ...over,
});

/** Workers answering after `delays[id]` ms with `answers[id]` (the doubled inputs by default). */
function setup(workers: WorkerEntry[], opts: {
  delays?: Record<string, number>; answers?: Record<string, number[]>; vetted?: (v: string) => boolean; auditRate?: number; refuse?: Set<string>;
  refuseWarm?: Set<string>;
} = {}) {
  const table = new Map(workers.map((w) => [w.workerId, w]));
  const runs: string[] = [];
  const cancels: string[] = [];
  const audits: string[] = [];
  const link: WorkerLink = {
    warm: async (id) => {
      if (opts.refuseWarm?.has(id)) throw new Error('PAUSED');
      return { backend: 'cpu', warmMs: 1 };
    },
    run: (id) => {
      runs.push(id);
      if (opts.refuse?.has(id)) return Promise.reject(new Error('PAUSED'));
      return new Promise((resolve) => setTimeout(() => resolve({ outputs: y(opts.answers?.[id] ?? [2, 4]), runMs: 1, backend: 'cpu' }), opts.delays?.[id] ?? 1));
    },
    cancel: (id) => { cancels.push(id); },
    cool: () => {},
  };
  const router = new InferRouter({
    workers: table, vetted: opts.vetted ?? (() => true), model: (h) => (h === MODEL.hash ? MODEL : undefined), clock: systemClock, log: pino({ level: 'silent' }),
    auditRate: opts.auditRate ?? 0, audit: (_m, _i, _o, v) => { audits.push(v); },
  });
  router.setLink(link);
  return { router, runs, cancels, audits };
}

describe('InferRouter', () => {
  it('answers from a vetted volunteer\'s warm session, saying so', async () => {
    const { router } = setup([worker('w1', '10.0.0.1')]);
    const answer = await router.infer(request());
    expect(answer.verified).toBe('vetted-volunteer');
    expect(values(answer.outputs.y!.data)).toEqual([2, 4]);
  });

  it('refuses inputs that do not fit the model before any worker sees them, and unknown models', async () => {
    const { router, runs } = setup([worker('w1', '10.0.0.1')]);
    await expect(router.infer(request({ inputs: { x: { ...x([1, 2]), dims: [1, 3] } } }))).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
    await expect(router.infer(request({ inputs: { z: x([1, 2]) } }))).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
    await expect(router.infer(request({ model: 'b'.repeat(64) }))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(runs).toEqual([]);
  });

  it('says 503 when no vetted volunteer who serves interactive requests is online', async () => {
    await expect(setup([worker('w1', '10.0.0.1')], { vetted: () => false }).router.infer(request())).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(setup([worker('w1', '10.0.0.1', { interactive: false })]).router.infer(request())).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('routes to the worker that answers soonest once measured, and hedges to the next when the first is late', async () => {
    const { router, runs, cancels } = setup([worker('slow', '10.0.0.1'), worker('fast', '10.0.0.2')], { delays: { slow: 150, fast: 2 } });
    // The first requests measure both (hedging finds the fast one when the slow one is late).
    for (let i = 0; i < 4; i++) await router.infer(request());
    expect(cancels).toContain('slow');
    runs.length = 0;
    const answer = await router.infer(request());
    expect(runs[0]).toBe('fast');
    expect(answer.hedged).toBe(false);
  });

  it('with replicas 2, answers when two volunteers of distinct origins agree, and asks a third when they do not', async () => {
    const agree = setup([worker('a', '10.0.0.1'), worker('b', '10.0.0.1'), worker('c', '10.0.0.2')]);
    const answer = await agree.router.infer(request({ replicas: 2 }));
    expect(answer.verified).toBe('two-origins');
    const origins = new Set(agree.runs.map((id) => (id === 'c' ? '10.0.0.2' : '10.0.0.1')));
    expect(origins.size).toBe(2);

    const liar = setup([worker('a', '10.0.0.1'), worker('b', '10.0.0.2'), worker('c', '10.0.0.3')], { answers: { a: [9, 9] }, delays: { a: 1, b: 20, c: 40 } });
    const fixed = await liar.router.infer(request({ replicas: 2 }));
    expect(values(fixed.outputs.y!.data)).toEqual([2, 4]);
    expect(new Set(liar.runs)).toEqual(new Set(['a', 'b', 'c']));
  });

  it('answers through another worker when one refuses, and leaves the refuser out of the pool after', async () => {
    const { router, runs } = setup([worker('paused', '10.0.0.1'), worker('ok', '10.0.0.2')], { refuse: new Set(['paused']), delays: { ok: 5 } });
    await router.infer(request());
    await router.infer(request());
    await router.infer(request());
    expect(runs.filter((id) => id === 'paused').length).toBeLessThanOrEqual(1);
    expect(runs.filter((id) => id === 'ok')).toHaveLength(3);
  });

  it('survives a worker that refuses to warm up while the pool already has a ready one (no unhandled rejection)', async () => {
    const { router, runs } = setup([worker('ready', '10.0.0.1')], { refuseWarm: new Set(['late']) });
    await router.infer(request());
    // A second eligible worker joins; the next request warms it in the background, and it refuses.
    const table = (router as unknown as { deps: { workers: Map<string, WorkerEntry> } }).deps.workers;
    table.set('late', worker('late', '10.0.0.2'));
    await router.infer(request());
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(runs).toEqual(['ready', 'ready']);
    expect(router.pool.has(MODEL.hash, 'late')).toBe(false);
  });

  it('sends a sample of single answers to the server\'s audit', async () => {
    const { router, audits } = setup([worker('w1', '10.0.0.1')], { auditRate: 1 });
    await router.infer(request());
    expect(audits).toEqual(['v-w1']);
  });
});
