/**
 * Health (503 with the reason while draining), readiness (503 when the store does not answer), the metrics
 * token, and the document route, through a real HTTP server.
 */
import http from 'node:http';
import express from 'express';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type OpsDeps, opsRouter } from './ops-routes.js';
import { restErrorHandler } from './rest.js';

const servers: http.Server[] = [];
afterEach(async () => { for (const s of servers.splice(0)) await new Promise((r) => s.close(r)); });

async function serve(over: Partial<OpsDeps> = {}): Promise<string> {
  const app = express();
  app.use(opsRouter({
    draining: () => null, workers: () => 3, probeStore: () => {}, scrape: async () => ({ body: 'm 1\n', contentType: 'text/plain; version=0.0.4' }),
    openApi: () => ({ openapi: '3.1.1' }), ...over,
  }));
  app.use(restErrorHandler(pino({ level: 'silent' })));
  const server = http.createServer(app);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

describe('opsRouter', () => {
  it('says healthy and ready while serving', async () => {
    const url = await serve();
    const health = await fetch(`${url}/api/v1/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true, workers: 3 });
    expect(await (await fetch(`${url}/api/v1/ready`)).json()).toEqual({ ok: true });
    expect(await (await fetch(`${url}/api/v1/openapi.json`)).json()).toEqual({ openapi: '3.1.1' });
  });

  it('says 503 with the reason while draining, and when the store does not answer', async () => {
    let draining: string | null = 'draining: shutting down';
    const url = await serve({ draining: () => draining, probeStore: () => { throw new Error('The database connection is not open'); } });
    const health = await fetch(`${url}/api/v1/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ ok: false, reason: 'draining: shutting down' });
    draining = null;
    const ready = await fetch(`${url}/api/v1/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ ok: false, reason: 'the store does not answer: The database connection is not open' });
    expect((await fetch(`${url}/api/v1/health`)).status).toBe(200);
  });

  it('serves the metrics openly without a token, and only with it when one is set', async () => {
    const open = await serve();
    const res = await fetch(`${open}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(await res.text()).toBe('m 1\n');
    const closed = await serve({ metricsToken: 'sekrit-token' });
    expect((await fetch(`${closed}/metrics`)).status).toBe(401);
    expect((await fetch(`${closed}/metrics`, { headers: { authorization: 'Bearer sekrit-tokeN' } })).status).toBe(401);
    expect((await fetch(`${closed}/metrics`, { headers: { authorization: 'sekrit-token' } })).status).toBe(401);
    const ok = await fetch(`${closed}/metrics`, { headers: { authorization: 'Bearer sekrit-token' } });
    expect(ok.status).toBe(200);
  });
});
