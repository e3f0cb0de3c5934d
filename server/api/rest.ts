/**
 * The REST API under /api/v1 and the public blob routes. Each route parses its input with a zod
 * schema, calls a service, and lets the error handler below turn failures into `{ error: {code, message} }`.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { AppError } from '../../shared/errors.js';
import { sha256Schema } from '../../shared/protocol.js';
import { type DatasetView, type ModelView, type RerunResult, jobRequestSchema, rerunSchema } from '../../shared/rest-types.js';
import type { ApiKeys } from '../auth/api-keys.js';
import type { Config } from '../config.js';
import type { DatasetService } from '../jobs/datasets.js';
import type { JobService } from '../jobs/job-service.js';
import type { ModelService } from '../onnx/model-service.js';
import type { BlobStore } from '../store/blob-store.js';
import type { ModelRow, Store } from '../store/store.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { keyRouter } from './key-routes.js';
import { type ServerRunFigures, operatorRouter } from './operator-routes.js';
import { identifyKey, keyOf, requireKey, restRateLimit } from './rest-auth.js';
import { toHttpError } from './wire-error.js';
import type { PeerViews } from './peer-views.js';
import type { WorkerInfo } from './worker-socket.js';

export interface RestDeps {
  workers: Map<string, WorkerInfo>;
  /** The other servers on the same database (their workers are listed too). */
  peers?: PeerViews;
  config: Config;
  log: Logger;
  store: Store;
  blobs: BlobStore;
  keys: ApiKeys;
  models: ModelService;
  datasets: DatasetService;
  jobs: JobService;
  scheduler: Scheduler;
  /** The server's own runs, for their figures. */
  serverRuns: ServerRunFigures;
}

/** A model as the API shows it (not the store's row). */
const modelView = (m: ModelRow): ModelView => ({
  hash: m.hash, size: m.size, inputs: m.inputs, outputs: m.outputs, opsets: m.opsets, weightBytes: m.weightBytes, largestWeight: m.largestWeight,
  createdAt: m.createdAt,
});

/**
 * Routes for researchers (keyed) and the model bytes that workers fetch (public, immutable). Returned as
 * an express sub-app so that it carries its own 'trust proxy' setting: behind a reverse proxy (trustProxy)
 * `req.ip` is the address the proxy saw, one hop back; otherwise the socket's address, whatever headers say.
 */
export function restRouter(deps: RestDeps): express.Express {
  const { config, jobs } = deps;
  const api = express();
  api.disable('x-powered-by');
  api.set('trust proxy', config.trustProxy ? 1 : false);
  const r = express.Router();
  api.use(r);
  const auth = requireKey;
  // The key is verified first, so the limit counts per verified key, or per address for everything else.
  r.use('/api/v1', identifyKey(deps.keys), restRateLimit(config.rateLimitPerMinute));
  const json = express.json({ limit: '1mb' });
  const raw = (limit: number) => express.raw({ type: () => true, limit });
  const owner = keyOf;

  r.get('/api/v1/health', (_req, res) => {
    res.json({ ok: true, workers: deps.scheduler.connectedWorkers });
  });

  r.post('/api/v1/models', auth, raw(config.maxModelBytes), async (req, res) => {
    const body = req.body as Buffer;
    if (!Buffer.isBuffer(body) || body.byteLength === 0) throw new AppError('INVALID_PAYLOAD', 'send the ONNX file as the request body');
    const model = await deps.models.upload(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    res.status(201).json(modelView(model));
  });

  r.get('/api/v1/models/:hash', auth, (req, res) => {
    const hash = sha256Schema.parse(req.params.hash);
    const model = deps.store.getModel(hash);
    if (!model) throw new AppError('NOT_FOUND', `model ${hash} not found`);
    res.json(modelView(model));
  });

  // Streamed to disk as it arrives: a data set can be far larger than the server should hold in memory.
  r.post('/api/v1/datasets', auth, async (req, res) => {
    const declared = Number(req.get('content-length'));
    if (declared > config.maxDatasetBytes) throw new AppError('TOO_LARGE', `the data set is larger than ${config.maxDatasetBytes} bytes (TABGRID_MAX_DATASET_BYTES)`);
    const d = await deps.datasets.uploadStream(req, config.maxDatasetBytes);
    const view: DatasetView = { hash: d.hash, dtype: d.dtype, shape: d.shape, size: d.size, createdAt: d.createdAt };
    res.status(201).json(view);
  });

  r.post('/api/v1/jobs', auth, json, async (req, res) => {
    const body = jobRequestSchema.parse(req.body ?? {});
    const job = await jobs.create(owner(req).id, body, { maxItems: config.maxJobItems, maxTasks: config.maxJobTasks });
    res.status(201).json(jobs.view(job));
  });

  r.get('/api/v1/jobs', auth, (req, res) => {
    const k = owner(req);
    res.json({ jobs: jobs.list(k.id, k.admin).map((j) => jobs.view(j)) });
  });

  r.get('/api/v1/jobs/:id', auth, (req, res) => {
    const k = owner(req);
    res.json(jobs.view(jobs.get(String(req.params.id), k.id, k.admin)));
  });

  r.post('/api/v1/jobs/:id/cancel', auth, (req, res) => {
    const k = owner(req);
    res.json(jobs.view(jobs.cancel(jobs.get(String(req.params.id), k.id, k.admin))));
  });

  // Like the other job routes, a job that is not the caller's is "not found" (admin keys reach every job).
  r.delete('/api/v1/jobs/:id', auth, (req, res) => {
    const k = owner(req);
    res.json(jobs.delete(jobs.get(String(req.params.id), k.id, k.admin)));
  });

  r.get('/api/v1/jobs/:id/disk', auth, (req, res) => {
    const k = owner(req);
    res.json(jobs.disk(jobs.get(String(req.params.id), k.id, k.admin)));
  });

  r.get('/api/v1/jobs/:id/results/:output', auth, async (req, res) => {
    const k = owner(req);
    const job = jobs.get(String(req.params.id), k.id, k.admin);
    const parts = jobs.resultParts(job, String(req.params.output));
    res.type('application/octet-stream')
      .set('content-length', String(parts.size))
      .set('content-disposition', `attachment; filename="${String(req.params.output).replace(/[^\w.-]/g, '_')}.npy"`);
    // One task's output at a time, with backpressure: the server never holds the whole result.
    for (const chunk of parts.chunks()) {
      if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      if (res.destroyed) return;
    }
    res.end();
  });

  r.post('/api/v1/jobs/:id/rerun', auth, json, (req, res) => {
    const k = owner(req);
    rerunSchema.parse(req.body ?? {});
    const job = jobs.get(String(req.params.id), k.id, k.admin);
    const reopened = jobs.rerunTainted(job);
    const answer: RerunResult = { job: jobs.view(jobs.get(job.id, k.id, k.admin)), reopened };
    res.json(answer);
  });

  r.use(keyRouter({ keys: deps.keys, auth }));
  r.use(operatorRouter({ store: deps.store, jobs, workers: deps.workers, auth, serverRuns: deps.serverRuns, peers: deps.peers }));
  r.use('/api/v1', (req, _res, next) => next(new AppError('NOT_FOUND', `no API route ${req.method} ${req.baseUrl}${req.path}`)));

  // Model bytes for workers: public, content-addressed, cached forever. Readable from other origins: a page that
  // failed over to another server of the same network fetches its models from there.
  r.get('/models/:hash', (req, res, next) => {
    const parsed = sha256Schema.safeParse(req.params.hash);
    if (!parsed.success || !deps.store.getModel(parsed.data)) return next(new AppError('NOT_FOUND', 'no such model'));
    res.set({ 'cache-control': 'public, max-age=31536000, immutable', 'access-control-allow-origin': '*', 'cross-origin-resource-policy': 'cross-origin' });
    res.sendFile(deps.blobs.pathOf(parsed.data), { headers: { 'content-type': 'application/octet-stream' } });
  });

  return api;
}

/** Express's final error handler: one wire form for every failure, including body-parser's and serve-static's. */
export function restErrorHandler(log: Logger) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const answer = toHttpError(err, log);
    if (!answer || res.headersSent) return;
    res.status(answer.status).json({ error: answer.wire });
  };
}
