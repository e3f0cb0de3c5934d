/**
 * The REST API under /api/v1 and the public blob routes. Each route parses its input with a zod
 * schema, calls a service, and lets the error handler below turn failures into `{ error: {code, message} }`.
 */
import { createHash } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import type { Logger } from 'pino';
import { z } from 'zod';
import { AppError } from '../../shared/errors.js';
import { createJobSchema, sha256Schema } from '../../shared/protocol.js';
import type { ApiKeys } from '../auth/api-keys.js';
import type { Config } from '../config.js';
import type { DatasetService } from '../jobs/datasets.js';
import type { JobService } from '../jobs/job-service.js';
import type { ModelService } from '../onnx/model-service.js';
import type { BlobStore } from '../store/blob-store.js';
import type { ApiKeyRow, Store } from '../store/store.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { operatorRouter } from './operator-routes.js';
import { httpStatus, toWireError } from './wire-error.js';
import type { WorkerInfo } from './worker-socket.js';

export interface RestDeps {
  workers: Map<string, WorkerInfo>;
  config: Config;
  log: Logger;
  store: Store;
  blobs: BlobStore;
  keys: ApiKeys;
  models: ModelService;
  datasets: DatasetService;
  jobs: JobService;
  scheduler: Scheduler;
}

export type Authed = Request & { apiKey?: ApiKeyRow };

const keyName = z.object({ name: z.string().min(1).max(100), admin: z.boolean().default(false) });

function requireKey(keys: ApiKeys) {
  return (req: Authed, _res: Response, next: NextFunction) => {
    const header = req.get('authorization');
    const key = header?.startsWith('Bearer ') ? header.slice(7).trim() : req.get('x-api-key');
    if (!key) return next(new AppError('UNAUTHORIZED', 'an API key is required (Authorization: Bearer <key>)'));
    const row = keys.verify(key);
    if (!row) return next(new AppError('UNAUTHORIZED', 'unknown API key'));
    req.apiKey = row;
    next();
  };
}

/** Routes for researchers (keyed) and the model bytes that workers fetch (public, immutable). */
export function restRouter(deps: RestDeps): express.Router {
  const { config, jobs } = deps;
  const r = express.Router();
  const auth = requireKey(deps.keys);
  // Per API key, or per address for calls without one: a runaway script cannot starve everyone else.
  r.use('/api/v1', rateLimit({
    windowMs: 60_000,
    limit: config.rateLimitPerMinute,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: (req) => {
      const key = req.get('authorization') ?? req.get('x-api-key');
      return key ? `key:${createHash('sha256').update(key).digest('hex')}` : `ip:${ipKeyGenerator(req.ip ?? '')}`;
    },
    handler: (_req, _res, next) => next(new AppError('RATE_LIMITED', `more than ${config.rateLimitPerMinute} requests a minute; slow down`)),
  }));
  const json = express.json({ limit: '1mb' });
  const raw = (limit: number) => express.raw({ type: () => true, limit });
  const owner = (req: Authed) => req.apiKey!;

  r.get('/api/v1/health', (_req, res) => {
    res.json({ ok: true, workers: deps.scheduler.connectedWorkers });
  });

  r.post('/api/v1/models', auth, raw(config.maxModelBytes), async (req, res) => {
    const body = req.body as Buffer;
    if (!Buffer.isBuffer(body) || body.byteLength === 0) throw new AppError('INVALID_PAYLOAD', 'send the ONNX file as the request body');
    const model = await deps.models.upload(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    res.status(201).json(model);
  });

  r.get('/api/v1/models/:hash', auth, (req, res) => {
    const hash = sha256Schema.parse(req.params.hash);
    const model = deps.store.getModel(hash);
    if (!model) throw new AppError('NOT_FOUND', `model ${hash} not found`);
    res.json(model);
  });

  // Streamed to disk as it arrives: a data set can be far larger than the server should hold in memory.
  r.post('/api/v1/datasets', auth, async (req, res) => {
    const declared = Number(req.get('content-length'));
    if (declared > config.maxDatasetBytes) throw new AppError('TOO_LARGE', `the data set is larger than ${config.maxDatasetBytes} bytes (TABGRID_MAX_DATASET_BYTES)`);
    res.status(201).json(await deps.datasets.uploadStream(req, config.maxDatasetBytes));
  });

  r.post('/api/v1/jobs', auth, json, async (req, res) => {
    const body = createJobSchema.parse(req.body ?? {});
    const job = await jobs.create(owner(req).id, body);
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

  r.post('/api/v1/keys', auth, json, (req: Authed, res) => {
    if (!owner(req).admin) throw new AppError('UNAUTHORIZED', 'only an admin key can create keys');
    const body = keyName.parse(req.body ?? {});
    res.status(201).json(deps.keys.create(body.name, body.admin));
  });

  r.use(operatorRouter({ store: deps.store, jobs, workers: deps.workers, auth }));

  // Model bytes for workers: public, content-addressed, cached forever.
  r.get('/models/:hash', (req, res, next) => {
    const parsed = sha256Schema.safeParse(req.params.hash);
    if (!parsed.success || !deps.store.getModel(parsed.data)) return next(new AppError('NOT_FOUND', 'no such model'));
    res.set('cache-control', 'public, max-age=31536000, immutable');
    res.sendFile(deps.blobs.pathOf(parsed.data), { headers: { 'content-type': 'application/octet-stream' } });
  });

  return r;
}

/** Express's final error handler: one wire form for every failure, including body-parser's. */
export function restErrorHandler(log: Logger) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { type?: string; status?: number; message?: string };
    let wire;
    if (e?.type === 'entity.too.large') wire = { code: 'TOO_LARGE' as const, message: `request body too large: ${e.message}` };
    else if (e?.type === 'entity.parse.failed') wire = { code: 'INVALID_PAYLOAD' as const, message: `malformed JSON body: ${e.message}` };
    else if (e?.type === 'request.aborted') return;
    else wire = toWireError(err, log);
    if (res.headersSent) return;
    res.status(httpStatus(wire.code)).json({ error: wire });
  };
}
