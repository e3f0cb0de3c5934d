/**
 * A typed client for the REST API, used by the CLI and the tests.
 */
import type { CreateJobRequest, JobView } from '../shared/protocol.js';
import type { WireError } from '../shared/errors.js';
import type { ApiKeyView, CreateKeyRequest, CreatedApiKey, DatasetView, ModelView, RerunResult } from '../shared/rest-types.js';

/** A request body pulled from `chunks` one at a time, as the connection takes them. */
function pullStream(chunks: AsyncIterable<Uint8Array>, onError: (err: unknown) => void): ReadableStream<Uint8Array> {
  const it = chunks[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await it.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (err) {
        onError(err);
        controller.error(err);
      }
    },
    async cancel() {
      await it.return?.();
    },
  });
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

export class ApiClient {
  private readonly base: string;

  constructor(server: string, private readonly apiKey?: string) {
    this.base = server.replace(/\/+$/, '');
  }

  private async call(method: string, path: string, body?: Uint8Array | AsyncIterable<Uint8Array> | object): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let payload: string | Uint8Array | ReadableStream<Uint8Array> | undefined;
    // An error raised while making a streamed body (a value that cannot be converted, a corrupt image) is the
    // one to report; fetch would only say that it failed.
    let bodyError: unknown;
    if (body instanceof Uint8Array) {
      headers['content-type'] = 'application/octet-stream';
      payload = body;
    } else if (body && Symbol.asyncIterator in body) {
      headers['content-type'] = 'application/octet-stream';
      payload = pullStream(body, (err) => { bodyError = err; });
    } else if (body) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, body: payload as never, ...(payload instanceof ReadableStream ? { duplex: 'half' } : {}) });
    } catch (err) {
      if (bodyError !== undefined) throw bodyError;
      throw new ApiError(0, 'UNREACHABLE', `cannot reach the TabGrid server at ${this.base}: ${(err as Error).cause ?? (err as Error).message}`);
    }
    if (!res.ok) {
      let error: WireError | undefined;
      try { error = ((await res.json()) as { error?: WireError }).error; } catch { /* not JSON */ }
      throw new ApiError(res.status, error?.code ?? 'HTTP_ERROR', error?.message ?? `${method} ${path}: HTTP ${res.status}`);
    }
    return res;
  }

  async uploadModel(bytes: Uint8Array): Promise<ModelView> {
    return (await this.call('POST', '/api/v1/models', bytes)).json() as Promise<ModelView>;
  }

  /** Uploads a .npy file; an async iterable is sent as it is pulled, so a big file need not be in memory. */
  async uploadDataset(npy: Uint8Array | AsyncIterable<Uint8Array>): Promise<DatasetView> {
    return (await this.call('POST', '/api/v1/datasets', npy)).json() as Promise<DatasetView>;
  }

  async createJob(req: CreateJobRequest): Promise<JobView> {
    return (await this.call('POST', '/api/v1/jobs', req)).json() as Promise<JobView>;
  }

  async getJob(id: string): Promise<JobView> {
    return (await this.call('GET', `/api/v1/jobs/${encodeURIComponent(id)}`)).json() as Promise<JobView>;
  }

  async listJobs(): Promise<JobView[]> {
    return ((await (await this.call('GET', '/api/v1/jobs')).json()) as { jobs: JobView[] }).jobs;
  }

  async cancelJob(id: string): Promise<JobView> {
    return (await this.call('POST', `/api/v1/jobs/${encodeURIComponent(id)}/cancel`)).json() as Promise<JobView>;
  }

  /** Recomputes the tasks of a job that a since-quarantined volunteer helped accept. */
  async rerunTainted(id: string): Promise<RerunResult> {
    return (await this.call('POST', `/api/v1/jobs/${encodeURIComponent(id)}/rerun`, { tainted: true })).json() as Promise<RerunResult>;
  }

  /** Every API key, revoked ones included (admin key). */
  async listKeys(): Promise<ApiKeyView[]> {
    return ((await (await this.call('GET', '/api/v1/keys')).json()) as { keys: ApiKeyView[] }).keys;
  }

  /** A new key; its secret is in the answer this once (admin key). */
  async createKey(req: CreateKeyRequest): Promise<CreatedApiKey> {
    return (await this.call('POST', '/api/v1/keys', req)).json() as Promise<CreatedApiKey>;
  }

  async setKeyWeight(id: string, weight: number): Promise<ApiKeyView> {
    return (await this.call('PATCH', `/api/v1/keys/${encodeURIComponent(id)}`, { weight })).json() as Promise<ApiKeyView>;
  }

  async revokeKey(id: string): Promise<ApiKeyView> {
    return (await this.call('DELETE', `/api/v1/keys/${encodeURIComponent(id)}`)).json() as Promise<ApiKeyView>;
  }

  /** One output of a completed job, as .npy bytes. */
  async result(id: string, output: string): Promise<Uint8Array> {
    const res = await this.call('GET', `/api/v1/jobs/${encodeURIComponent(id)}/results/${encodeURIComponent(output)}`);
    return new Uint8Array(await res.arrayBuffer());
  }

  /** Polls until the job leaves `running`; `onProgress` sees every poll. */
  async waitJob(id: string, onProgress?: (job: JobView) => void, intervalMs = 500): Promise<JobView> {
    for (;;) {
      const job = await this.getJob(id);
      onProgress?.(job);
      if (job.status !== 'running') return job;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
