/**
 * The page's interactive sessions with onnxruntime-web's sessions replaced by fakes: a session per model on the
 * backend asked for, made once; a request that fails on WebGPU answered on WASM (and the model kept there); a few
 * models at most; runs queued through the `exclusive` the page gives when it shares a runtime.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { InferRun } from '../../shared/infer.js';
import { InteractiveSessions } from './interactive-sessions.js';
import { OrtBuilds } from './ort-builds.js';

const log: string[] = [];
let failGpu = false;

vi.mock('onnxruntime-web', async (importOriginal) => {
  const real = await importOriginal<typeof import('onnxruntime-web')>();
  return {
    ...real,
    InferenceSession: {
      async create(bytes: Uint8Array, o: { executionProviders: ('wasm' | 'webgpu')[] }) {
        const backend = o.executionProviders[0]!;
        const model = bytes[0];
        log.push(`create ${model} ${backend}`);
        return {
          inputNames: ['x'],
          outputNames: ['y'],
          async run(feeds: Record<string, InstanceType<typeof real.Tensor>>) {
            log.push(`run ${model} ${backend}`);
            if (backend === 'webgpu' && failGpu) throw new Error('GPU device lost');
            const x = feeds.x!.data as Float32Array;
            return { y: new real.Tensor('float32', x.map((v) => v * 2), [x.length]) };
          },
          async release() { log.push(`release ${model} ${backend}`); },
        };
      },
    },
  };
});

// WASM sessions come from the CPU-only build: the same fake.
vi.mock('onnxruntime-web/wasm', () => import('onnxruntime-web'));

const builds = new OrtBuilds('http://127.0.0.1/ort/');

/** Model n's hash; its fake bytes are [n]. */
const hash = (n: number) => String(n).repeat(64).slice(0, 64);
const fetchModel = async (url: string) => Uint8Array.of(Number(url.split('/').pop()));

function req(n: number, values = [1, 2]): InferRun {
  return { requestId: `q${n}`, modelHash: hash(n), modelUrl: `/models/${n}`, inputs: [{ name: 'x', dtype: 'float32', dims: [values.length], data: new Uint8Array(Float32Array.from(values).buffer) }] };
}

const floats = (d: Uint8Array) => Array.from(new Float32Array(d.slice().buffer));

beforeEach(() => { log.length = 0; failGpu = false; });

describe('InteractiveSessions', () => {
  it('makes a model\'s session once, on the backend asked for, and answers with its outputs', async () => {
    const s = new InteractiveSessions({ builds, fetchModel });
    expect(await s.warm(hash(1), '/models/1', 'wasm')).toMatchObject({ backend: 'wasm' });
    const out = await s.run(req(1, [1, 2, 3]), 'wasm');
    expect(out.backend).toBe('wasm');
    expect(floats(out.outputs[0]!.data)).toEqual([2, 4, 6]);
    await s.run(req(1), 'wasm');
    expect(log).toEqual(['create 1 wasm', 'run 1 wasm', 'run 1 wasm']);
    s.cool(hash(1));
    await vi.waitFor(() => expect(log).toContain('release 1 wasm'));
  });

  it('follows the backend the batch path settled on, and answers on WASM when WebGPU fails', async () => {
    const s = new InteractiveSessions({ builds, fetchModel });
    await s.run(req(1), 'wasm');
    failGpu = true;
    const out = await s.run(req(1), 'webgpu'); // the batch path moved the model to WebGPU; the GPU then failed
    expect(out.backend).toBe('wasm');
    expect(floats(out.outputs[0]!.data)).toEqual([2, 4]);
    expect((await s.run(req(1), 'webgpu')).backend).toBe('wasm'); // kept off the GPU from then on
    expect(log.filter((l) => l.startsWith('create'))).toEqual(['create 1 wasm', 'create 1 webgpu', 'create 1 wasm']);
  });

  it('keeps four models at most, letting the least recently used go', async () => {
    const s = new InteractiveSessions({ builds, fetchModel });
    for (const n of [1, 2, 3, 4]) await s.run(req(n), 'wasm');
    await s.run(req(1), 'wasm'); // 2 is now the least recently used
    await s.run(req(5), 'wasm');
    await vi.waitFor(() => expect(log).toContain('release 2 wasm'));
    expect(log.filter((l) => l.startsWith('release'))).toEqual(['release 2 wasm']);
  });

  it('queues its runs through the exclusive lane it is given (a runtime shared with batch work)', async () => {
    const order: string[] = [];
    let lane: Promise<unknown> = Promise.resolve();
    const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
      order.push('queued');
      const run = lane.then(fn);
      lane = run.catch(() => {});
      return run;
    };
    const s = new InteractiveSessions({ builds, fetchModel, exclusive });
    await s.run(req(1), 'wasm');
    expect(order).toEqual(['queued']);
  });
});
