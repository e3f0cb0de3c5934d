/**
 * What operators and their tools call: liveness (`/api/v1/health`: 503 while the server drains, so a load
 * balancer stops sending it work), readiness (`/api/v1/ready`: the store answers a read), the Prometheus
 * metrics (`/metrics`, open unless a metrics token is set) and the OpenAPI document. Mounted before the REST
 * router, outside its rate limit: a prober or a scraper calling often must not be refused.
 */
import crypto from 'node:crypto';
import express from 'express';
import { AppError } from '../../shared/errors.js';
import type { HealthView, ReadyView } from '../../shared/rest-schemas.js';

export interface OpsDeps {
  /** Why the server is not taking work (it is draining), or null while it is. */
  draining(): string | null;
  /** Connected workers, for the health answer. */
  workers(): number;
  /** A trivial read of the store; throws when the store cannot answer. */
  probeStore(): void;
  /** The metrics exposition and its content type. */
  scrape(): Promise<{ body: string; contentType: string }>;
  /** When set, `/metrics` needs `Authorization: Bearer <token>`. */
  metricsToken?: string;
  /** The OpenAPI document, built once. */
  openApi(): object;
}

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

/** Whether the request carries the token as a bearer token (compared in constant time). */
function bearerMatches(req: express.Request, token: string): boolean {
  const header = req.get('authorization') ?? '';
  const given = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
  return crypto.timingSafeEqual(digest(given), digest(token));
}

export function opsRouter(deps: OpsDeps): express.Router {
  const r = express.Router();

  r.get('/api/v1/health', (_req, res) => {
    const reason = deps.draining();
    const answer: HealthView = reason ? { ok: false, reason } : { ok: true, workers: deps.workers() };
    res.status(reason ? 503 : 200).set('cache-control', 'no-store').json(answer);
  });

  r.get('/api/v1/ready', (_req, res) => {
    let reason = deps.draining();
    if (!reason) {
      try {
        deps.probeStore();
      } catch (err) {
        reason = `the store does not answer: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
    const answer: ReadyView = reason ? { ok: false, reason } : { ok: true };
    res.status(reason ? 503 : 200).set('cache-control', 'no-store').json(answer);
  });

  r.get('/metrics', async (req, res) => {
    if (deps.metricsToken && !bearerMatches(req, deps.metricsToken)) {
      throw new AppError('UNAUTHORIZED', 'the metrics need the metrics token (Authorization: Bearer <token>)');
    }
    const { body, contentType } = await deps.scrape();
    res.set('cache-control', 'no-store').type(contentType).send(body);
  });

  r.get('/api/v1/openapi.json', (_req, res) => {
    res.json(deps.openApi());
  });

  return r;
}
