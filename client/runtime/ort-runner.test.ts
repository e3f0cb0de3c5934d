/**
 * OrtRunner's backend choice with onnxruntime-web's sessions replaced by fakes: a model's first task is answered
 * on WASM at once, whatever the WebGPU timing does (here it can be held open for as long as a test likes), and
 * the model moves to WebGPU only once the timing found it faster.
 */
import * as ortWasm from 'onnxruntime-web/wasm';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { TaskAssignment } from '../../shared/protocol.js';
import type { BackendChoice, Trial } from './backend-choice.js';
import { OrtRunner, type TrialRequest } from './ort-runner.js';
import { WARM_UP_MODEL } from './warm-up-model.js';

/** What the fake onnxruntime did, in order: "create wasm", "run webgpu", "release wasm"... */
const log: string[] = [];
/** How long a fake run takes, per backend; a WebGPU run can also be held until `releaseGpu()`. */
const runMs = { wasm: 0, webgpu: 0 };
let gpuGate: Promise<void> | null = null;
/** While set, making a session waits for it (a runtime still loading). */
let createGate: Promise<void> | null = null;
/** Which build made each session, in order: "wasm on cpu-only", "webgpu on jsep". */
const builds: string[] = [];

/**
 * A fake of one onnxruntime-web build: `build` names it in the log ("create wasm on cpu-only"), so the tests see
 * which build made each session: WASM ones must come from the CPU-only build, WebGPU ones from the JSEP build.
 */
const { fakeOrt } = vi.hoisted(() => ({
  fakeOrt: (build: string, real: typeof import('onnxruntime-web')) => ({
    ...real,
    env: { wasm: {}, webgpu: { device: Promise.resolve({ lost: new Promise(() => {}) }) }, logLevel: 'error' },
    InferenceSession: {
      async create(_bytes: Uint8Array, o: { executionProviders: ('wasm' | 'webgpu')[] }) {
        const backend = o.executionProviders[0]!;
        log.push(`create ${backend}`);
        builds.push(`${backend} on ${build}`);
        if (createGate) await createGate;
        return {
          inputNames: ['x'],
          outputNames: ['y'],
          async run() {
            log.push(`run ${backend}`);
            if (backend === 'webgpu' && gpuGate) await gpuGate;
            await new Promise((r) => setTimeout(r, runMs[backend]));
            return { y: new real.Tensor('float32', Float32Array.from([backend === 'wasm' ? 1 : 2]), [1]) };
          },
          async release() { log.push(`release ${backend}`); },
        };
      },
    },
  }),
}));

vi.mock('onnxruntime-web', async (importOriginal) => fakeOrt('jsep', await importOriginal()));
vi.mock('onnxruntime-web/wasm', async (importOriginal) => fakeOrt('cpu-only', await importOriginal()));

function task(id: string): TaskAssignment {
  return {
    replicaId: id, taskId: id, jobId: 'j', modelHash: 'm'.repeat(64), modelUrl: '/models/m', leaseMs: 60_000,
    inputs: [{ name: 'x', dtype: 'float32', dims: [1], data: new Uint8Array(Float32Array.from([3]).buffer) }],
  };
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  return { promise: new Promise<T>((r) => { resolve = r; }), resolve };
}

function runner(timeBackends?: (r: TrialRequest) => Promise<Trial[]>) {
  const choices: BackendChoice[] = [];
  const r = new OrtRunner({
    available: ['webgpu', 'wasm'], wasmPaths: 'http://127.0.0.1/ort/', gpuLabel: 'GPU ampere (nvidia)',
    fetchModel: async () => new Uint8Array([1, 2, 3]),
    onChoice: (_model, c) => choices.push(c),
    ...(timeBackends ? { timeBackends } : {}),
  });
  return { r, choices };
}

beforeEach(() => {
  log.length = 0;
  builds.length = 0;
  createGate = null;
  runMs.wasm = 0;
  runMs.webgpu = 0;
  gpuGate = null;
});

describe('OrtRunner backend choice', () => {
  it('answers the first task on WASM while WebGPU is still being timed, then moves to WebGPU when that was faster', async () => {
    const timing = deferred<Trial[]>();
    const asked: TrialRequest[] = [];
    const { r, choices } = runner((req) => { asked.push(req); return timing.promise; });
    gpuGate = new Promise(() => {}); // a WebGPU run on this runner would never end

    const first = await r.run(task('a'), 'http://127.0.0.1/models/m');
    expect(first.backend).toBe('wasm');
    expect(log).toEqual(['create wasm', 'run wasm']);
    expect(choices).toEqual([{ backend: 'wasm', reason: 'wasm for now: webgpu is being timed beside the first tasks' }]);
    // Then the timing was handed the model and the first task's inputs, for both backends.
    await vi.waitFor(() => expect(asked).toHaveLength(1));
    expect(asked[0]).toMatchObject({ model: new Uint8Array([1, 2, 3]), backends: ['wasm', 'webgpu'], inputs: task('a').inputs });
    // Tasks go on on WASM while the timing runs.
    expect((await r.run(task('b'), 'http://127.0.0.1/models/m')).backend).toBe('wasm');

    gpuGate = null;
    timing.resolve([{ backend: 'wasm', ms: 40 }, { backend: 'webgpu', ms: 4 }]);
    await r.settled();
    expect(choices.at(-1)).toEqual({ backend: 'webgpu', reason: 'webgpu: 4.0 ms on GPU ampere (nvidia) vs wasm 40 ms' });
    const third = await r.run(task('c'), 'http://127.0.0.1/models/m');
    expect(third).toMatchObject({ backend: 'webgpu' });
    expect(log).toContain('release wasm');
  });

  it('without a trial worker, times the backends itself after the first task, and stays on WASM when WebGPU is slower', async () => {
    runMs.webgpu = 30;
    const { r, choices } = runner();
    const first = await r.run(task('a'), 'http://127.0.0.1/models/m');
    expect(first.backend).toBe('wasm');
    expect(log).not.toContain('create webgpu');

    await r.settled();
    // The task ran first; then the timing, in sessions of its own: a warm-up and a timed run on each, released after.
    expect(log).toEqual(['create wasm', 'run wasm', 'create wasm', 'run wasm', 'run wasm', 'release wasm', 'create webgpu', 'run webgpu', 'run webgpu', 'release webgpu']);
    // WASM on the CPU-only build (14 MB of WebAssembly), WebGPU on the JSEP build (28 MB), loaded only for it.
    expect(builds).toEqual(['wasm on cpu-only', 'wasm on cpu-only', 'webgpu on jsep']);
    expect(choices.at(-1)).toMatchObject({ backend: 'wasm', reason: expect.stringMatching(/^wasm: [\d.]+ ms vs webgpu [\d.]+ ms on GPU ampere \(nvidia\)$/) });
    expect((await r.run(task('b'), 'http://127.0.0.1/models/m')).backend).toBe('wasm');
  });

  it('stays on WASM, saying why, when the timing fails', async () => {
    const { r, choices } = runner(async () => [{ backend: 'wasm', error: 'no trial worker' }, { backend: 'webgpu', error: 'no adapter' }]);
    expect((await r.run(task('a'), 'http://127.0.0.1/models/m')).backend).toBe('wasm');
    await r.settled();
    expect(choices.at(-1)).toEqual({ backend: 'wasm', reason: 'wasm: the timing failed (wasm failed (no trial worker), webgpu failed on GPU ampere (nvidia) (no adapter)), staying' });
  });

  it('warms the runtime up on a tiny model before the first task, which waits for it', async () => {
    const create = vi.spyOn(ortWasm.InferenceSession, 'create');
    const { r } = runner(() => new Promise(() => {}));
    void r.warmUp();
    await r.run(task('a'), 'http://127.0.0.1/models/m');
    expect(create.mock.calls[0]![0]).toBe(WARM_UP_MODEL);
    expect(log).toEqual(['create wasm', 'release wasm', 'create wasm', 'run wasm']);
  });

  it('downloads a new model while the runtime is still loading (the warm-up), not once it has loaded', async () => {
    let loaded!: () => void;
    createGate = new Promise((resolve) => { loaded = resolve; });
    const fetched: string[] = [];
    const r = new OrtRunner({
      available: ['wasm'], wasmPaths: 'http://127.0.0.1/ort/',
      fetchModel: async (url) => { fetched.push(url); return new Uint8Array([1, 2, 3]); },
    });
    void r.warmUp();
    const first = r.run(task('a'), 'http://127.0.0.1/models/m');
    await vi.waitFor(() => expect(fetched).toEqual(['http://127.0.0.1/models/m']));
    expect(log).toEqual(['create wasm']); // the warm-up's session, not made yet
    createGate = null;
    loaded();
    expect((await first).backend).toBe('wasm');
    expect(log).toEqual(['create wasm', 'release wasm', 'create wasm', 'run wasm']);
    await r.run(task('b'), 'http://127.0.0.1/models/m');
    expect(fetched).toHaveLength(1); // the session is kept: no second download
  });
});
