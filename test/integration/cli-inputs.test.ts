/**
 * `tabgrid submit` with inputs as researchers have them: a float64, Fortran-order .npy (numpy's defaults) for a
 * float32 model, int32 token ids for an int64 one, and a folder of PNG and JPEG photos. The CLI converts them
 * while they stream; the job's outputs must equal onnxruntime-node's on the converted data, built here by hand.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import jpeg from 'jpeg-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import { imageModel, jpegFile, pngFile, rgba } from '../helpers/images-fixtures.js';
import { int64Model, mlpModel, seeded } from '../helpers/models.js';
import { bytesOf, rawNpy, toFortran } from '../helpers/npy-fixtures.js';
import { BIN } from '../helpers/serve-process.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { type TestWorkers, npyTensor, reference, startWorkers } from '../helpers/workers.js';

const run = promisify(execFile);
const TOL = { rtol: 1e-4, atol: 1e-5 };

describe('tabgrid submit converts inputs as researchers have them', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-cli-inputs-'));
  let server: TestServer;
  let workers: TestWorkers;
  let api: ApiClient;
  let env: NodeJS.ProcessEnv;
  const tabgrid = (...args: string[]) => run(process.execPath, [BIN, ...args], { env, cwd: dir });
  const write = (name: string, bytes: Uint8Array) => fs.writeFileSync(path.join(dir, name), bytes);
  const result = (file: string) => npyTensor('y', new Uint8Array(fs.readFileSync(path.join(dir, file))));

  beforeAll(async () => {
    server = await startTestServer();
    workers = startWorkers(server.url, 2, 2);
    api = new ApiClient(server.url, server.apiKey);
    env = { ...process.env, TABGRID_SERVER: server.url, TABGRID_API_KEY: server.apiKey };
  });
  afterAll(async () => {
    await workers.stop();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('takes a float64 Fortran-order .npy for a float32 model, says so in one line, and gets the reference outputs', async () => {
    const model = mlpModel(4, 8, 3, 31);
    write('mlp.onnx', model);
    const shape = [6, 4];
    const values = seeded(5, 24).map((v) => v * 3.000000001); // not float32 values: the rounding shows
    write('x64f.npy', rawNpy({ descr: '<f8', fortran: true, shape, data: bytesOf(toFortran(Float64Array.from(values), shape, (n) => new Float64Array(n))) }));
    const res = await tabgrid('submit', 'mlp.onnx', '--inputs', 'x64f.npy', '--batch', '2', '--canary-rate', '0', '--out', 'out-a');
    const lines = res.stderr.split('\n');
    expect(lines.filter((l) => l.includes('float64 -> float32'))).toEqual(["input x: float64 -> float32 (numpy's default dtype), Fortran order -> C order"]);
    expect(lines).toContain('input x: float32[6,4] from x64f.npy');
    expect(res.stderr).toContain(`wrote ${path.join('out-a', 'y.npy')}`);
    const want = await reference(model, { x: writeNpy('float32', shape, bytesOf(Float32Array.from(values))) });
    const got = result(path.join('out-a', 'y.npy'));
    expect(got.dims).toEqual([6, 3]);
    expect(compareOutputs([got], [want.y], TOL)).toEqual({ verdict: 'agree' });
  });

  it('widens int32 token ids for an int64 model', async () => {
    const model = int64Model();
    write('ids.onnx', model);
    const ids = Int32Array.from({ length: 20 }, (_, i) => (i * 7919) % 30522 - 5);
    write('ids.npy', writeNpy('int32', [4, 5], bytesOf(ids)));
    const res = await tabgrid('submit', 'ids.onnx', '--inputs', 'ids.npy', '--batch', '2', '--canary-rate', '0', '--out', 'out-ids');
    expect(res.stderr).toContain('input ids: int32 -> int64 (token ids)\n');
    const want = await reference(model, { ids: writeNpy('int64', [4, 5], bytesOf(BigInt64Array.from(Array.from(ids, BigInt)))) });
    expect(compareOutputs([result(path.join('out-ids', 'y.npy'))], [want.y], { rtol: 0, atol: 0 })).toEqual({ verdict: 'agree' });
  });

  it('refuses a float64 value beyond float32\'s range, naming it, and creates no job', async () => {
    const before = (await api.listJobs()).length;
    const v = new Float64Array(8);
    v[6] = -1e39;
    write('huge.npy', rawNpy({ descr: '<f8', shape: [2, 4], data: bytesOf(v) }));
    const err = await tabgrid('submit', 'mlp.onnx', '--inputs', 'huge.npy').catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain("tabgrid: input x: item 1, element 2 is -1e+39, beyond float32's range (±3.4028e+38); it would become -Infinity");
    expect((await api.listJobs()).length).toBe(before);
  });

  // Three photos for a model of 8x8 RGB, channels first: a JPEG, a PNG with alpha (dropped), and a 16x16 PNG
  // of 2x2 blocks (halved exactly by bilinear resizing), with a note that is not an image.
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const block = (x: number, y: number) => [(x * 29 + y * 7) % 256, (y * 31) % 256, (x * y * 13) % 256, 255];
  const jpg = jpegFile(8, 8, rgba(8, 8, (x, y) => [30 + 20 * x, 200 - 10 * y, 90, 255]), 92);
  const photos = {
    'a.jpg': { bytes: jpg, pixels: jpeg.decode(jpg, { useTArray: true, formatAsRGBA: true }).data },
    'b.png': { bytes: pngFile(8, 8, rgba(8, 8, (x, y) => [x * 30, y * 30, 255 - x * y, 40 + x])), pixels: rgba(8, 8, (x, y) => [x * 30, y * 30, 255 - x * y, 40 + x]) },
    'c.png': { bytes: pngFile(16, 16, rgba(16, 16, (x, y) => block(x >> 1, y >> 1))), pixels: rgba(8, 8, block) },
  };
  /** The images as the model should see them, [n, 3, 8, 8] or [n, 8, 8, 3], computed pixel by pixel. */
  const expected = (layout: 'nchw' | 'nhwc', norm: (p: number, c: number) => number) => {
    const out: number[] = [];
    for (const { pixels } of Object.values(photos)) {
      const at = (c: number, y: number, x: number) => norm(pixels[(y * 8 + x) * 4 + c], c);
      if (layout === 'nchw') for (let c = 0; c < 3; c++) for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) out.push(at(c, y, x));
      else for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) for (let c = 0; c < 3; c++) out.push(at(c, y, x));
    }
    return writeNpy('float32', layout === 'nchw' ? [3, 3, 8, 8] : [3, 8, 8, 3], bytesOf(Float32Array.from(out)));
  };
  const photoFolder = (name: string, extra: Record<string, Uint8Array>) => {
    fs.mkdirSync(path.join(dir, name));
    for (const [f, { bytes }] of Object.entries(photos)) write(path.join(name, f), bytes);
    for (const [f, bytes] of Object.entries(extra)) write(path.join(name, f), bytes);
  };

  it('takes a folder of PNG and JPEG photos, normalised, and writes the manifest beside the results', async () => {
    const model = imageModel(8, 8, 'nchw');
    write('vision.onnx', model);
    photoFolder('photos', { 'notes.txt': new TextEncoder().encode('taken in May') });
    const res = await tabgrid('submit', 'vision.onnx', '--inputs', 'photos', '--scale', '1/255', '--mean', mean.join(','), '--std', std.join(','),
      '--batch', '2', '--canary-rate', '0', '--out', 'out-photos');
    const jobId = res.stdout.trim();
    expect(res.stderr).toContain('photos: ignoring 1 entry that is not PNG or JPEG: notes.txt');
    expect(res.stderr).toContain('input x: 3 images from photos -> float32[3,3,8,8], nchw RGB 8x8 (bilinear), value = (pixel * 0.00392157 - 0.485,0.456,0.406) / 0.229,0.224,0.225');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'out-photos', 'inputs-manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ job: jobId, input: 'x', files: ['a.jpg', 'b.png', 'c.png'], shape: [3, 3, 8, 8], layout: 'nchw', resize: '8x8' });
    const want = await reference(model, { x: expected('nchw', (p, c) => (p / 255 - mean[c]) / std[c]) });
    const got = result(path.join('out-photos', 'y.npy'));
    expect(got.dims).toEqual([3, 4]);
    expect(compareOutputs([got], [want.y], TOL)).toEqual({ verdict: 'agree' });
  });

  it('guesses channels-last from the model, and `tabgrid results` puts the manifest beside results fetched later', async () => {
    const model = imageModel(8, 8, 'nhwc');
    write('vision-nhwc.onnx', model);
    const jobId = (await tabgrid('submit', 'vision-nhwc.onnx', '--inputs', 'photos', '--batch', '3', '--canary-rate', '0', '--detach')).stdout.trim();
    expect(JSON.parse(fs.readFileSync(path.join(dir, `${jobId}.inputs-manifest.json`), 'utf8')).files).toEqual(['a.jpg', 'b.png', 'c.png']);
    await tabgrid('wait', jobId);
    const fetched = (await tabgrid('results', jobId, '--out', 'out-later')).stdout.trim().split('\n');
    expect(fetched).toEqual([path.join('out-later', 'y.npy'), path.join('out-later', 'inputs-manifest.json')]);
    const want = await reference(model, { x: expected('nhwc', (p) => p) });
    expect(compareOutputs([result(path.join('out-later', 'y.npy'))], [want.y], TOL)).toEqual({ verdict: 'agree' });
  });

  it('refuses a corrupt photo, naming it, and creates no job', async () => {
    const before = (await api.listJobs()).length;
    photoFolder('damaged', { 'b2.png': photos['b.png'].bytes.subarray(0, 60) });
    const err = await tabgrid('submit', 'vision.onnx', '--inputs', 'damaged').catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain(`tabgrid: ${path.join('damaged', 'b2.png')}: cannot decode it as PNG, corrupt or truncated`);
    expect((await api.listJobs()).length).toBe(before);
  });
});
