/**
 * The real TabGrid server in a child process (bench/lib/serve.ts) with a fresh data folder, and the REST
 * calls the benchmarks make through cli/api-client.ts, as a researcher's CLI would.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiClient } from '../../cli/api-client.js';
import type { CreateJobRequest, JobView } from '../../shared/protocol.js';
import { BENCH, Child, memory } from './proc.js';

export interface BenchServer {
  child: Child;
  url: string;
  apiKey: string;
  dataDir: string;
  api: ApiClient;
  /** Stops the server (SIGTERM: it drains, then exits) and removes its data folder. */
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** Write a V8 CPU profile of the server into this folder (node --cpu-prof). */
  profileDir?: string;
  /** Extra node flags. */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Keep the data folder after stop (to read the store afterwards). */
  keepData?: boolean;
}

export async function startServer(opts: ServerOptions = {}): Promise<BenchServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-bench-'));
  const apiKey = `bench-${randomBytes(12).toString('hex')}`;
  const nodeArgs = [...(opts.nodeArgs ?? [])];
  if (opts.profileDir) {
    fs.mkdirSync(opts.profileDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`);
  }
  const child = new Child(path.join(BENCH, 'lib', 'serve.ts'), [], {
    nodeArgs,
    // Every load generator connects from 127.0.0.1: the per-origin connection and lease caps and the per-socket
    // event rate, which bound a stranger on the open internet, would measure those limits instead of the server.
    env: {
      PORT: '0', HOST: '127.0.0.1', TABGRID_DATA: dataDir, TABGRID_API_KEY: apiKey, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
      TABGRID_MAX_CONNECTIONS_PER_ORIGIN: '100000', TABGRID_SOCKET_EVENTS_PER_SECOND: '1000000', TABGRID_NEWCOMER_LEASES_PER_ORIGIN: '1000000',
      // The benches measure established volunteers: vetting needs its known answers and confirmed results, not a minute.
      TABGRID_VET_TENURE_MS: '0',
      ...opts.env,
    },
    label: 'server',
  });
  const [, url] = await child.line(/TabGrid is running at (http:\/\/\S+?)\/?$/);
  return {
    child, url, apiKey, dataDir, api: new ApiClient(url, apiKey),
    async stop() {
      await child.stop();
      if (!opts.keepData) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Uploads a model and one data set per input; returns the hashes for createJob. */
export async function upload(api: ApiClient, model: Uint8Array, inputs: Record<string, Uint8Array>): Promise<{ model: string; inputs: Record<string, string> }> {
  const m = await api.uploadModel(model);
  const ids: Record<string, string> = {};
  for (const [name, npy] of Object.entries(inputs)) ids[name] = (await api.uploadDataset(npy)).hash;
  return { model: m.hash, inputs: ids };
}

/**
 * Keeps enough work queued without polling the server (polling would add its own load to the server's
 * CPU): creates another job from the same uploads whenever `consumed()` (tasks taken, as counted by the
 * load) comes within `low` of the tasks created so far.
 */
export class JobFeeder {
  readonly jobs: string[] = [];
  private created = 0;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(
    private readonly api: ApiClient, private readonly req: CreateJobRequest & { items: number },
    private readonly low: number, private readonly consumed: () => Promise<number>,
  ) {}

  async start(): Promise<void> {
    await this.top();
    this.timer = setInterval(() => void this.top(), 100);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Tasks done and replicas issued over all jobs made so far. */
  async progress(): Promise<{ done: number; replicas: number; failed: number; views: JobView[] }> {
    const views = await Promise.all(this.jobs.map((id) => retry(() => this.api.getJob(id))));
    return {
      done: views.reduce((n, v) => n + v.tasks.done, 0),
      replicas: views.reduce((n, v) => n + v.replicasIssued, 0),
      failed: views.reduce((n, v) => n + v.tasks.failed, 0),
      views,
    };
  }

  /** Cancels the jobs still running (so the server can stop without draining them). */
  async cancelAll(): Promise<void> {
    for (const id of this.jobs) await this.api.cancelJob(id).catch(() => {});
  }

  private async top(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const tasks = Math.ceil(this.req.items / (this.req.batchSize ?? 16));
      if (this.jobs.length === 0 || this.created - (await this.consumed()) < this.low) {
        const { items: _items, ...req } = this.req;
        this.jobs.push((await retry(() => this.api.createJob(req))).id);
        this.created += tasks;
      }
    } finally {
      this.busy = false;
    }
  }
}

/**
 * Retries a REST call that failed to reach the server: under load a keep-alive connection can be closed by
 * the server just as the client reuses it (ECONNRESET), which says nothing about the server.
 */
export async function retry<T>(call: () => Promise<T>, tries = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await call();
    } catch (err) {
      if (i >= tries || (err as { code?: string }).code !== 'UNREACHABLE') throw err;
      await new Promise((r) => setTimeout(r, 100 * i));
    }
  }
}

export { memory };
