/**
 * Every HTTP route the server registers, described for the OpenAPI document (openapi.ts): method, path, who may
 * call it, the schema its body is parsed with (the same zod object the route parses with, imported, never
 * copied) and what it answers. A test compares this list with the routes the express app actually registers
 * (route-list.ts), both ways, so the two cannot drift.
 */
import { z } from 'zod';
import { inferRequestSchema, inferResponseSchema } from '../../shared/infer.js';
import { sha256Schema } from '../../shared/protocol.js';
import { createKeySchema, jobRequestSchema, keyIdSchema, keyPatchSchema, rerunSchema } from '../../shared/rest-types.js';
import {
  apiKeyListSchema, apiKeyViewSchema, classListSchema, createdApiKeySchema, datasetViewSchema, deletedJobSchema, healthSchema, jobDiskViewSchema,
  jobListSchema, jobViewSchema,
  leaderboardSchema, modelViewSchema, readySchema, replicaListSchema, rerunResultSchema, serverRunsViewSchema, volunteerListSchema,
  workerListSchema,
} from '../../shared/rest-schemas.js';

/** Who may call a route: anyone, any API key, an admin key, or the metrics token when one is set. */
export type RouteAuth = 'none' | 'key' | 'admin' | 'metrics';

/** A body or an answer that is bytes or text rather than JSON. */
export interface RawContent { type: string; description: string }

export interface RouteDoc {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Express syntax (`/api/v1/jobs/:id`). */
  path: string;
  summary: string;
  tag: 'jobs' | 'models' | 'keys' | 'operators' | 'public' | 'operations' | 'pages';
  auth: RouteAuth;
  /** JSON body parsed with this schema, or raw bytes. */
  body?: z.ZodType | RawContent;
  /** Path parameters' schemas; unnamed ones are plain strings. */
  params?: Record<string, z.ZodType>;
  query?: Record<string, { schema: z.ZodType; description: string }>;
  ok: { status: number; description: string; schema?: z.ZodType; raw?: RawContent };
  /** Statuses besides the success that the route answers with the error shape (401 and 429 follow from auth and the path). */
  errors?: number[];
  /** Answers other than the success that are not the error shape (health and readiness say 503 in their own form). */
  also?: { status: number; description: string; schema: z.ZodType }[];
}

const npy: RawContent = { type: 'application/octet-stream', description: 'a NumPy .npy file' };
const html: RawContent = { type: 'text/html', description: 'the page (503 text/plain when the client is not built)' };
const jobId = { id: z.string().meta({ description: 'a job id' }) };
const hash = { hash: sha256Schema };

const page = (path: string, summary: string): RouteDoc =>
  ({ method: 'GET', path, summary, tag: 'pages', auth: 'none', ok: { status: 200, description: summary, raw: html } });

export const ROUTE_DOCS: RouteDoc[] = [
  // ---- Operations (ops-routes.ts) ----
  {
    method: 'GET', path: '/api/v1/health', summary: 'Liveness: 200 while the server takes work, 503 with the reason while it drains', tag: 'operations', auth: 'none',
    ok: { status: 200, description: 'serving', schema: healthSchema }, also: [{ status: 503, description: 'draining (shutting down)', schema: healthSchema }],
  },
  {
    method: 'GET', path: '/api/v1/ready', summary: 'Readiness: the store answers a read and the server is not draining', tag: 'operations', auth: 'none',
    ok: { status: 200, description: 'ready', schema: readySchema }, also: [{ status: 503, description: 'not ready, and why', schema: readySchema }],
  },
  {
    method: 'GET', path: '/api/v1/openapi.json', summary: 'This document', tag: 'operations', auth: 'none',
    ok: { status: 200, description: 'an OpenAPI 3.1 document', raw: { type: 'application/json', description: 'OpenAPI 3.1' } },
  },
  {
    method: 'GET', path: '/metrics', summary: 'Prometheus metrics (text exposition format)', tag: 'operations', auth: 'metrics',
    ok: { status: 200, description: 'the metrics', raw: { type: 'text/plain; version=0.0.4', description: 'Prometheus text format' } },
  },
  // ---- Models and data sets (rest.ts) ----
  {
    method: 'POST', path: '/api/v1/models', summary: 'Upload an ONNX model (validated: parsed and loaded by onnxruntime-node)', tag: 'models', auth: 'key',
    body: { type: 'application/octet-stream', description: 'the .onnx file' }, ok: { status: 201, description: 'the model', schema: modelViewSchema }, errors: [400, 413],
  },
  {
    method: 'GET', path: '/api/v1/models/:hash', summary: 'A model\'s description', tag: 'models', auth: 'key', params: hash,
    ok: { status: 200, description: 'the model', schema: modelViewSchema }, errors: [400, 404],
  },
  {
    method: 'POST', path: '/api/v1/datasets', summary: 'Upload a data set (streamed to disk)', tag: 'models', auth: 'key', body: npy,
    ok: { status: 201, description: 'the data set', schema: datasetViewSchema }, errors: [400, 413],
  },
  {
    method: 'GET', path: '/models/:hash', summary: 'A model\'s bytes, for workers (public, content-addressed, cached for good)', tag: 'public', auth: 'none', params: hash,
    ok: { status: 200, description: 'the model', raw: { type: 'application/octet-stream', description: 'the .onnx file' } }, errors: [404],
  },
  // ---- Jobs (rest.ts, operator-routes.ts) ----
  {
    method: 'POST', path: '/api/v1/infer', summary: 'One interactive inference: a warm volunteer answers (two agreeing across origins with replicas 2)',
    tag: 'jobs', auth: 'key', body: inferRequestSchema,
    ok: { status: 200, description: 'the outputs, how they were trusted, and the time taken', schema: inferResponseSchema }, errors: [400, 404, 413, 503],
  },
  {
    method: 'POST', path: '/api/v1/jobs', summary: 'Queue a job', tag: 'jobs', auth: 'key', body: jobRequestSchema,
    ok: { status: 201, description: 'the job', schema: jobViewSchema }, errors: [400, 404],
  },
  { method: 'GET', path: '/api/v1/jobs', summary: 'The caller\'s jobs (every job for an admin key)', tag: 'jobs', auth: 'key', ok: { status: 200, description: 'jobs', schema: jobListSchema } },
  {
    method: 'GET', path: '/api/v1/jobs/:id', summary: 'A job and its progress', tag: 'jobs', auth: 'key', params: jobId,
    ok: { status: 200, description: 'the job', schema: jobViewSchema }, errors: [404],
  },
  {
    method: 'DELETE', path: '/api/v1/jobs/:id', summary: 'Delete a job with its tasks, replicas, outputs and results (a running one is cancelled first)',
    tag: 'jobs', auth: 'key', params: jobId, ok: { status: 200, description: 'what was deleted', schema: deletedJobSchema }, errors: [404],
  },
  {
    method: 'GET', path: '/api/v1/jobs/:id/disk', summary: 'The disk a job holds on the server', tag: 'jobs', auth: 'key', params: jobId,
    ok: { status: 200, description: 'bytes by kind', schema: jobDiskViewSchema }, errors: [404],
  },
  {
    method: 'POST', path: '/api/v1/jobs/:id/cancel', summary: 'Cancel a job', tag: 'jobs', auth: 'key', params: jobId,
    ok: { status: 200, description: 'the job', schema: jobViewSchema }, errors: [404, 409],
  },
  {
    method: 'GET', path: '/api/v1/jobs/:id/results/:output', summary: 'One output of a job, all items in order, as .npy (streamed)', tag: 'jobs', auth: 'key',
    params: { ...jobId, output: z.string().meta({ description: 'an output name of the model' }) },
    ok: { status: 200, description: 'the output', raw: npy }, errors: [404, 409],
  },
  {
    method: 'POST', path: '/api/v1/jobs/:id/rerun', summary: 'Compute again the tasks accepted with a volunteer since quarantined', tag: 'jobs', auth: 'key',
    params: jobId, body: rerunSchema, ok: { status: 200, description: 'the job and how many tasks were reopened', schema: rerunResultSchema }, errors: [400, 404, 409],
  },
  {
    method: 'GET', path: '/api/v1/jobs/:id/replicas', summary: 'A job\'s replicas (volunteers as labels; ids for an admin key)', tag: 'jobs', auth: 'key',
    params: jobId, ok: { status: 200, description: 'replicas', schema: replicaListSchema }, errors: [404],
  },
  // ---- API keys (key-routes.ts) ----
  { method: 'GET', path: '/api/v1/keys', summary: 'List API keys', tag: 'keys', auth: 'admin', ok: { status: 200, description: 'keys', schema: apiKeyListSchema } },
  {
    method: 'POST', path: '/api/v1/keys', summary: 'Create an API key (shown once)', tag: 'keys', auth: 'admin', body: createKeySchema,
    ok: { status: 201, description: 'the key', schema: createdApiKeySchema }, errors: [400],
  },
  {
    method: 'PATCH', path: '/api/v1/keys/:id', summary: 'Set a key\'s fair-share weight', tag: 'keys', auth: 'admin', params: { id: keyIdSchema }, body: keyPatchSchema,
    ok: { status: 200, description: 'the key', schema: apiKeyViewSchema }, errors: [400, 404],
  },
  {
    method: 'DELETE', path: '/api/v1/keys/:id', summary: 'Revoke a key', tag: 'keys', auth: 'admin', params: { id: keyIdSchema },
    ok: { status: 200, description: 'the key', schema: apiKeyViewSchema }, errors: [400, 404, 409],
  },
  // ---- Operators (operator-routes.ts) ----
  { method: 'GET', path: '/api/v1/volunteers', summary: 'Volunteers\' records', tag: 'operators', auth: 'admin', ok: { status: 200, description: 'volunteers', schema: volunteerListSchema } },
  {
    method: 'GET', path: '/api/v1/stats/server-runs', summary: 'The server\'s own runs since it started', tag: 'operators', auth: 'admin',
    ok: { status: 200, description: 'figures', schema: serverRunsViewSchema },
  },
  {
    method: 'GET', path: '/api/v1/stats/classes', summary: 'Agreement between worker classes', tag: 'operators', auth: 'admin',
    ok: { status: 200, description: 'classes', schema: classListSchema },
  },
  { method: 'GET', path: '/api/v1/workers', summary: 'Workers online', tag: 'operators', auth: 'admin', ok: { status: 200, description: 'workers', schema: workerListSchema } },
  {
    method: 'GET', path: '/api/v1/leaderboard', summary: 'Public standings of volunteers, teams and sites', tag: 'public', auth: 'none',
    // operator-routes.ts parses `limit` with a schema it does not export; this says what that schema accepts.
    query: { limit: { schema: z.number().int().min(1).max(100).default(20), description: 'rows per list (clamped to 1..100; not a number: 20)' } },
    ok: { status: 200, description: 'standings', schema: leaderboardSchema },
  },
  // ---- Pages (page-routes.ts, app.ts) ----
  page('/', 'The volunteer page'),
  page('/index.html', 'The volunteer page'),
  page('/widget/frame', 'The widget\'s frame'),
  page('/widget/frame.html', 'The widget\'s frame'),
  page('/dashboard', 'The researchers\' dashboard'),
  page('/dashboard/', 'The researchers\' dashboard'),
  page('/dashboard/index.html', 'The researchers\' dashboard'),
  {
    method: 'GET', path: '/widget.js', summary: 'The embeddable widget script, with a token for the site that asked for it', tag: 'pages', auth: 'none',
    ok: { status: 200, description: 'the script', raw: { type: 'text/javascript', description: 'widget.js' } },
  },
];
