/**
 * A typed client for the REST API, used by the CLI and the tests, and exported from the package:
 * `import { TabGridClient } from 'tabgrid/client'` (package.json "exports", compiled to dist/node/cli/api-client.js),
 * with the shapes of the REST answers from shared/.
 */
import type { CreateJobRequest, JobView } from '../shared/protocol.js';
import type { WireError } from '../shared/errors.js';
import type { InferRequest, InferResponse } from '../shared/infer.js';
import type {
  ApiKeyView, CreateKeyRequest, CreatedApiKey, DatasetView, DeletedJob, JobDiskView, JobRequest, ModelView, RerunResult,
} from '../shared/rest-types.js';
import { BodyError, streamUpload } from './stream-upload.js';

export type { CreateJobRequest, JobStatus, JobView, TensorSpec } from '../shared/protocol.js';
export type { WireError } from '../shared/errors.js';
export type {
  ApiKeyView, CreateKeyRequest, CreatedApiKey, DatasetView, DeletedJob, JobDiskView, JobFileView, JobRequest, KeyPatch, ModelView, RerunRequest,
  RerunResult,
} from '../shared/rest-types.js';

/** The server's error answer as an ApiError: its code and message when it sent them, the HTTP status when not. */
function httpError(status: number, text: string, what: string): ApiError {
  let error: WireError | undefined;
  try { error = (JSON.parse(text) as { error?: WireError }).error; } catch { /* not JSON */ }
  return new ApiError(status, error?.code ?? 'HTTP_ERROR', error?.message ?? `${what}: HTTP ${status}`);
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The REST API of a TabGrid server at `server` (its base URL), with an API key for the routes that need one. */
export class TabGridClient {
  private readonly base: string;

  constructor(server: string, private readonly apiKey?: string) {
    this.base = server.replace(/\/+$/, '');
  }

  private async call(method: string, path: string, body?: Uint8Array | AsyncIterable<Uint8Array> | object): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (body && Symbol.asyncIterator in body) return this.stream(method, path, headers, body as AsyncIterable<Uint8Array>);
    let payload: string | Uint8Array | undefined;
    if (body instanceof Uint8Array) {
      headers['content-type'] = 'application/octet-stream';
      payload = body;
    } else if (body) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, body: payload as never });
    } catch (err) {
      throw this.unreachable(err);
    }
    if (!res.ok) throw httpError(res.status, await res.text().catch(() => ''), `${method} ${path}`);
    return res;
  }

  /**
   * Sends a body as it is made. An error raised while making it (a value that cannot be converted, a corrupt
   * image) is the one reported, and the server keeps nothing of the cut request.
   */
  private async stream(method: string, path: string, headers: Record<string, string>, chunks: AsyncIterable<Uint8Array>): Promise<Response> {
    headers['content-type'] = 'application/octet-stream';
    let answer;
    try {
      answer = await streamUpload(method, `${this.base}${path}`, headers, chunks);
    } catch (err) {
      if (err instanceof BodyError) throw err.error;
      throw this.unreachable(err);
    }
    if (answer.status < 200 || answer.status >= 300) throw httpError(answer.status, answer.text, `${method} ${path}`);
    return new Response(answer.text, { status: answer.status, headers: { 'content-type': 'application/json' } });
  }

  private unreachable(err: unknown): ApiError {
    return new ApiError(0, 'UNREACHABLE', `cannot reach the TabGrid server at ${this.base}: ${(err as Error).cause ?? (err as Error).message}`);
  }

  async uploadModel(bytes: Uint8Array): Promise<ModelView> {
    return (await this.call('POST', '/api/v1/models', bytes)).json() as Promise<ModelView>;
  }

  async getModel(hash: string): Promise<ModelView> {
    return (await this.call('GET', `/api/v1/models/${encodeURIComponent(hash)}`)).json() as Promise<ModelView>;
  }

  /** One interactive inference: a warm volunteer answers (shared/infer.ts). */
  async infer(req: InferRequest): Promise<InferResponse> {
    return (await this.call('POST', '/api/v1/infer', req)).json() as Promise<InferResponse>;
  }

  /** Uploads a .npy file; an async iterable is sent as it is pulled, so a big file need not be in memory. */
  async uploadDataset(npy: Uint8Array | AsyncIterable<Uint8Array>): Promise<DatasetView> {
    return (await this.call('POST', '/api/v1/datasets', npy)).json() as Promise<DatasetView>;
  }

  async createJob(req: CreateJobRequest | JobRequest): Promise<JobView> {
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

  /** Deletes a job with all it holds (a running one is cancelled first). */
  async deleteJob(id: string): Promise<DeletedJob> {
    return (await this.call('DELETE', `/api/v1/jobs/${encodeURIComponent(id)}`)).json() as Promise<DeletedJob>;
  }

  /** The disk a job holds on the server. */
  async jobDisk(id: string): Promise<JobDiskView> {
    return (await this.call('GET', `/api/v1/jobs/${encodeURIComponent(id)}/disk`)).json() as Promise<JobDiskView>;
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

/** The name the CLI and the tests have used: the same class. */
export { TabGridClient as ApiClient };
