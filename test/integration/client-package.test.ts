/**
 * The typed client as another package gets it: `import { TabGridClient } from 'tabgrid/client'`, resolved through
 * package.json's "exports" to the compiled dist/node/cli/api-client.js and typed by its .d.ts, from a throwaway
 * package that depends on this one, calling a real server.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TabGridClient } from '../../cli/api-client.js';
import { writeNpy } from '../../shared/npy.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

describe('tabgrid/client', () => {
  let server: TestServer;
  let out = '';
  let consumer = '';

  beforeAll(async () => {
    // Compiled with the build's own settings into a folder of its own (a concurrent `npm run build` is left alone).
    fs.mkdirSync(path.join(ROOT, 'dist'), { recursive: true });
    out = fs.mkdtempSync(path.join(ROOT, 'dist', 'node-client-test-'));
    await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', out], { cwd: ROOT }).catch((err: { stdout?: string }) => {
      throw new Error(`tsc -p tsconfig.build.json failed:\n${err.stdout ?? String(err)}`);
    });
    // The installed package as npm lays out a file: dependency's contents: package.json, the build, its dependencies.
    consumer = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-consumer-'));
    const pkg = path.join(consumer, 'node_modules', 'tabgrid');
    fs.mkdirSync(path.join(pkg, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
    fs.symlinkSync(out, path.join(pkg, 'dist', 'node'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'));
    fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', dependencies: { tabgrid: `file:${ROOT}` } }));
    server = await startTestServer();
  }, 240_000);
  afterAll(async () => {
    await server?.close();
    if (out) fs.rmSync(out, { recursive: true, force: true });
    if (consumer) fs.rmSync(consumer, { recursive: true, force: true });
  });

  it('resolves through the exports map to the compiled client and its declarations, and nothing else of the package', () => {
    const req = createRequire(path.join(consumer, 'index.js'));
    expect(fs.realpathSync(req.resolve('tabgrid/client'))).toBe(fs.realpathSync(path.join(out, 'cli', 'api-client.js')));
    expect(fs.existsSync(path.join(out, 'cli', 'api-client.d.ts'))).toBe(true);
    expect(() => req.resolve('tabgrid/dist/node/server/main.js')).toThrow(/not defined by "exports"/);
  });

  it('type-checks a consumer against the REST shapes, and calls a real server from a plain Node program', async () => {
    const api = new TabGridClient(server.url, server.apiKey);
    const m = await api.uploadModel(mlpModel(4, 8, 3, 1));
    const d = await api.uploadDataset(writeNpy('float32', [4, 4], floatData(1, 16)));
    const job = await api.createJob({ model: m.hash, inputs: { x: d.hash }, batchSize: 2, canaryRate: 0 });

    fs.writeFileSync(path.join(consumer, 'check.ts'), [
      `import { ApiError, TabGridClient, type JobDiskView, type JobView } from 'tabgrid/client';`,
      `const c = new TabGridClient('http://127.0.0.1:1', 'k');`,
      `export const jobs: Promise<JobView[]> = c.listJobs();`,
      `export const disk: Promise<JobDiskView> = c.jobDisk('job-1');`,
      `export const status = (j: JobView): 'running' | 'completed' | 'failed' | 'cancelled' => j.status;`,
      `export const made = c.createJob({ model: 'a', inputs: { x: 'b' }, keepReplicaOutputs: true });`,
      `export const isApiError = (e: unknown) => e instanceof ApiError && e.code.length > 0;`,
      // A wrong shape must not type-check: the types are real, not `any`.
      `// @ts-expect-error: a job's id is a string`,
      `export const wrong = (j: JobView): number => j.id;`,
    ].join('\n'));
    fs.writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: [] },
      files: ['check.ts'],
    }));
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: consumer }).catch((err: { stdout?: string }) => {
      throw new Error(`the consumer does not type-check:\n${err.stdout ?? String(err)}`);
    });

    fs.writeFileSync(path.join(consumer, 'main.mjs'), `
      import { ApiError, TabGridClient } from 'tabgrid/client';
      const api = new TabGridClient(process.env.URL, process.env.KEY);
      const jobs = await api.listJobs();
      const disk = await api.jobDisk(process.env.JOB);
      let missing;
      try { await api.getJob('job-000000000000'); } catch (err) { missing = { apiError: err instanceof ApiError, status: err.status, code: err.code }; }
      process.stdout.write(JSON.stringify({ jobs: jobs.map((j) => [j.id, j.items]), disk: disk.jobId, missing }));
    `);
    const { stdout } = await run(process.execPath, ['main.mjs'], { cwd: consumer, env: { ...process.env, URL: server.url, KEY: server.apiKey, JOB: job.id } });
    expect(JSON.parse(stdout)).toEqual({ jobs: [[job.id, 4]], disk: job.id, missing: { apiError: true, status: 404, code: 'NOT_FOUND' } });
  });
});
