/**
 * The OpenAPI document: 3.1, every operation with its answers and the error shape, request bodies taken from the
 * schemas the routes parse with; and the route lister it is checked against (test/integration/operations.test.ts
 * compares the whole document with the real app's routes).
 */
import express from 'express';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { jobRequestSchema, keyPatchSchema } from '../../shared/rest-types.js';
import { jsonSchema, openApiDocument, openApiPath } from './openapi.js';
import { ROUTE_DOCS } from './route-docs.js';
import { listRoutes } from './route-list.js';

type Op = { responses: Record<string, { $ref?: string; content?: Record<string, { schema: unknown }> }>; requestBody?: { content: Record<string, { schema: unknown }> };
  parameters?: { name: string; in: string }[]; security: unknown[] };
const doc = openApiDocument({ version: '9.9.9' }) as { openapi: string; info: { version: string }; paths: Record<string, Record<string, Op>>; components: Record<string, Record<string, unknown>> };
const op = (method: string, path: string) => doc.paths[path]![method]!;

describe('openApiDocument', () => {
  it('is OpenAPI 3.1 with an operation, answers and security for every route in the table', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info.version).toBe('9.9.9');
    const ops = Object.values(doc.paths).flatMap((p) => Object.values(p));
    expect(ops).toHaveLength(ROUTE_DOCS.length);
    for (const o of ops) {
      expect(Object.keys(o.responses).length).toBeGreaterThan(0);
      expect(Object.keys(o.responses).some((s) => /^2\d\d$/.test(s))).toBe(true);
      expect(Array.isArray(o.security)).toBe(true);
    }
    // Path parameters are named in the path and declared.
    for (const [p, methods] of Object.entries(doc.paths)) {
      const names = [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const o of Object.values(methods)) expect((o.parameters ?? []).filter((x) => x.in === 'path').map((x) => x.name)).toEqual(names);
    }
  });

  it('describes bodies with the schemas the routes parse with, and failures with the one error shape', () => {
    expect(op('post', '/api/v1/jobs').requestBody!.content['application/json']!.schema).toEqual(jsonSchema(jobRequestSchema, 'input'));
    expect(op('patch', '/api/v1/keys/{id}').requestBody!.content['application/json']!.schema).toEqual(jsonSchema(keyPatchSchema, 'input'));
    const job = jsonSchema(jobRequestSchema, 'input') as { required: string[]; properties: Record<string, unknown> };
    // Fields with defaults may be left out of a request.
    expect(job.required.sort()).toEqual(['inputs', 'model']);
    expect(op('post', '/api/v1/jobs').responses['401']!.$ref).toBe('#/components/responses/Error');
    expect(op('post', '/api/v1/jobs').responses['429']).toBeDefined();
    expect(op('get', '/api/v1/health').responses['503']).toBeDefined();
    expect(op('get', '/api/v1/health').security).toEqual([]);
    expect(op('get', '/api/v1/keys').security).toEqual([{ apiKey: [] }]);
    const error = doc.components.schemas!.Error as { properties: { error: { properties: { code: { enum: string[] } }; required: string[] } } };
    expect(error.properties.error.required.sort()).toEqual(['code', 'message']);
    expect(error.properties.error.properties.code.enum).toContain('INVALID_PAYLOAD');
    expect(() => JSON.stringify(doc)).not.toThrow();
  });

  it('writes express paths as OpenAPI templates', () => {
    expect(openApiPath('/api/v1/jobs/:id/results/:output')).toBe('/api/v1/jobs/{id}/results/{output}');
    expect(jsonSchema(z.object({ a: z.string() }), 'output')).not.toHaveProperty('$schema');
  });
});

describe('listRoutes', () => {
  it('finds routes in routers, nested routers with mount paths and mounted sub-apps', () => {
    const app = express();
    const sub = express();
    const r = express.Router();
    r.use('/api', (_req, _res, next) => next());
    r.get(['/a', '/b'], (_req, res) => { res.end(); });
    const inner = express.Router();
    inner.post('/x/:id', (_req, res) => { res.end(); });
    r.use('/pre', inner);
    sub.use(r);
    app.use(sub);
    app.delete('/c', (_req, res) => { res.end(); });
    expect(listRoutes(app, [sub])).toEqual([
      { method: 'GET', path: '/a' }, { method: 'GET', path: '/b' }, { method: 'DELETE', path: '/c' }, { method: 'POST', path: '/pre/x/:id' },
    ]);
    // A sub-app it was not told of would hide its routes: refused.
    expect(() => listRoutes(app)).toThrow(/sub-apps/);
  });
});
