/**
 * `POST /api/v1/infer`: one interactive request, answered by a warm volunteer (server/infer/infer-router.ts).
 * Its own rate limit per key (apps call it often), a JSON body big enough for base64 tensors, and the errors
 * every route gives: 400 for inputs that do not fit the model, 404 for an unknown model, 503 when no worker
 * can serve it in time, 429 over the key's rate.
 */
import express from 'express';
import { inferRequestSchema } from '../../shared/infer.js';
import type { ApiKeys } from '../auth/api-keys.js';
import type { InferRouter } from '../infer/infer-router.js';
import { identifyKey, requireKey, restRateLimit } from './rest-auth.js';

export interface InferRoutesDeps {
  keys: ApiKeys;
  router: InferRouter;
  ratePerMinute: number;
  trustProxy: boolean;
}

/** An express sub-app (it carries its own 'trust proxy' setting, for the rate limit's client address). */
export function inferRoutes(deps: InferRoutesDeps): express.Express {
  const api = express();
  api.disable('x-powered-by');
  api.set('trust proxy', deps.trustProxy ? 1 : false);
  const json = express.json({ limit: '12mb' });
  api.post('/api/v1/infer', identifyKey(deps.keys), restRateLimit(deps.ratePerMinute), requireKey, json, async (req, res) => {
    const body = inferRequestSchema.parse(req.body);
    res.json(await deps.router.infer(body));
  });
  return api;
}
