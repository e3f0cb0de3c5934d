/**
 * The OpenAPI 3.1 document of the HTTP API (`GET /api/v1/openapi.json`), built from the route table
 * (route-docs.ts) and the zod schemas the routes parse with, converted by `z.toJSONSchema` (JSON Schema
 * 2020-12, OpenAPI 3.1's own dialect). Request bodies are described as the schema accepts them (`io: 'input'`:
 * fields with defaults are optional), answers as the server sends them.
 */
import { z } from 'zod';
import { errorResponseSchema } from '../../shared/rest-schemas.js';
import { httpStatus } from './wire-error.js';
import { type RawContent, ROUTE_DOCS, type RouteDoc } from './route-docs.js';

type Json = Record<string, unknown>;

/** A zod schema as JSON Schema, without the `$schema` line (the document's dialect already says it). */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

/** `/api/v1/jobs/:id` -> `/api/v1/jobs/{id}`. */
export const openApiPath = (expressPath: string): string => expressPath.replace(/:(\w+)/g, '{$1}');

const ERROR_REF = { $ref: '#/components/responses/Error' };

const REASONS: Record<number, string> = {
  400: 'the request is malformed; `message` names the field',
  401: 'no API key, an unknown or revoked one, or one without the rights this needs',
  404: 'not found',
  409: 'conflicts with the current state',
  413: 'too large',
  429: 'rate limited: too many requests a minute for this key or address',
  500: 'an unexpected error (logged by the server)',
};

const rawContent = (raw: RawContent) => ({ [raw.type]: { schema: { type: 'string', ...(raw.type.startsWith('application/octet') ? { contentMediaType: raw.type } : {}) } } });

function operation(route: RouteDoc): Json {
  const op: Json = { summary: route.summary, tags: [route.tag], operationId: `${route.method.toLowerCase()}${route.path.replace(/[^\w]+(\w?)/g, (_, c: string) => c.toUpperCase())}` };
  const names = [...route.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
  const parameters: Json[] = names.map((name) => ({
    name, in: 'path', required: true, schema: route.params?.[name] ? jsonSchema(route.params[name], 'input') : { type: 'string' },
  }));
  for (const [name, q] of Object.entries(route.query ?? {})) parameters.push({ name, in: 'query', required: false, description: q.description, schema: jsonSchema(q.schema, 'input') });
  if (parameters.length) op.parameters = parameters;
  if (route.body) {
    op.requestBody = route.body instanceof z.ZodType
      ? { required: true, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } }
      : { required: true, description: route.body.description, content: rawContent(route.body) };
  }
  const responses: Json = {};
  responses[String(route.ok.status)] = {
    description: route.ok.description,
    content: route.ok.schema ? { 'application/json': { schema: jsonSchema(route.ok.schema, 'output') } } : rawContent(route.ok.raw!),
  };
  for (const a of route.also ?? []) responses[String(a.status)] = { description: a.description, content: { 'application/json': { schema: jsonSchema(a.schema, 'output') } } };
  const errors = new Set(route.errors ?? []);
  if (route.auth === 'key' || route.auth === 'admin' || route.auth === 'metrics') errors.add(httpStatus('UNAUTHORIZED'));
  // Everything under /api/v1 that restRouter serves is rate limited; health, readiness and this document are not.
  if (route.path.startsWith('/api/v1/') && route.tag !== 'operations') errors.add(httpStatus('RATE_LIMITED'));
  for (const s of [...errors].sort()) {
    const why = s === 401 && route.auth === 'metrics' ? 'the metrics token is missing or wrong' : REASONS[s] ?? 'an error';
    responses[String(s)] = { ...ERROR_REF, description: why };
  }
  if (route.tag !== 'pages') responses.default = { ...ERROR_REF, description: REASONS[500] };
  op.responses = responses;
  op.security = route.auth === 'key' || route.auth === 'admin' ? [{ apiKey: [] }] : route.auth === 'metrics' ? [{ metricsToken: [] }, {}] : [];
  if (route.auth === 'admin') op.description = 'Needs an admin key.';
  if (route.auth === 'metrics') op.description = 'Open unless the server was started with --metrics-token (TABGRID_METRICS_TOKEN); then the token is required as a bearer token.';
  return op;
}

/** The document for `routes` (all of them by default). */
export function openApiDocument(opts: { version: string; routes?: RouteDoc[] }): Json {
  const paths: Record<string, Json> = {};
  for (const route of opts.routes ?? ROUTE_DOCS) {
    const p = (paths[openApiPath(route.path)] ??= {});
    p[route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.1',
    info: {
      title: 'TabGrid',
      version: opts.version,
      description: 'Volunteer GPU compute in a browser tab: queue batch jobs (an ONNX model and data sets), follow them, download verified outputs. '
        + 'Authenticate with an API key as a bearer token (`Authorization: Bearer <key>`). Every failure answers `{ error: { code, message } }`.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    tags: ['jobs', 'models', 'keys', 'operators', 'public', 'operations', 'pages'].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An API key (the admin key is in the data folder\'s admin.key, or TABGRID_API_KEY)' },
        metricsToken: { type: 'http', scheme: 'bearer', description: 'The token given with --metrics-token (TABGRID_METRICS_TOKEN)' },
      },
      schemas: { Error: jsonSchema(errorResponseSchema, 'output') },
      responses: { Error: { description: 'an error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } },
    },
  };
}
