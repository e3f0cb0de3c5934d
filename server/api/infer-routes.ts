/**
 * `POST /api/v1/infer`: one interactive request, answered by a warm volunteer (server/infer/infer-router.ts).
 * Its own rate limit per key (apps call it often); a JSON body with base64 tensors, or for large tensors the binary
 * variant (shared/infer.ts: TENSORS_CONTENT_TYPE, the other fields in the query string; `Accept` of that type gets
 * the outputs packed, with the answer's other fields in X-TabGrid-* headers); and the errors
 * every route gives: 400 for inputs that do not fit the model, 404 for an unknown model, 503 when no worker
 * can serve it in time, 429 over the key's rate. On several servers, a request this server's workers cannot take is
 * passed to the others (server/infer/peer-infer.ts).
 */
import express from 'express';
import { INFER_MAX_BINARY_BYTES, TENSORS_CONTENT_TYPE, inferQuerySchema, inferRequestSchema } from '../../shared/infer.js';
import { packTensors } from '../../shared/tensor-pack.js';
import { decodeInputs, decodePacked, encodeOutputs } from '../infer/infer-tensors.js';
import type { ApiKeys } from '../auth/api-keys.js';
import type { InferRouter } from '../infer/infer-router.js';
import { FORWARDED_HEADER } from '../infer/peer-infer.js';
import { identifyKey, presented, requireKey, restRateLimit } from './rest-auth.js';

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
  const binary = express.raw({ type: TENSORS_CONTENT_TYPE, limit: INFER_MAX_BINARY_BYTES + 64 * 1024 });
  api.post('/api/v1/infer', identifyKey(deps.keys), restRateLimit(deps.ratePerMinute), requireKey, json, binary, async (req, res) => {
    // A request another server passed here is answered here or refused, never passed on again.
    const key = presented(req);
    const forwardWith = req.get(FORWARDED_HEADER) === undefined && key ? `Bearer ${key}` : undefined;
    // The raw parser takes only the packed type: a Buffer body is the binary variant, anything else is JSON.
    let answer;
    if (Buffer.isBuffer(req.body)) {
      const packed = new Uint8Array(req.body);
      answer = await deps.router.inferTensors(inferQuerySchema.parse(req.query), (model) => decodePacked(packed, model.inputs), forwardWith);
    } else {
      const body = inferRequestSchema.parse(req.body);
      answer = await deps.router.inferTensors(body, (model) => decodeInputs(body.inputs, model.inputs), forwardWith);
    }
    if (req.accepts(['application/json', TENSORS_CONTENT_TYPE]) === TENSORS_CONTENT_TYPE) {
      res.type(TENSORS_CONTENT_TYPE).set({
        'X-TabGrid-Verified': answer.verified, 'X-TabGrid-Ms': String(answer.ms), 'X-TabGrid-Run-Ms': String(answer.runMs),
        'X-TabGrid-Hedged': String(answer.hedged), 'X-TabGrid-Backend': answer.backend,
      }).send(Buffer.from(packTensors(answer.outputs)));
      return;
    }
    res.json({ ...answer, outputs: encodeOutputs(answer.outputs) });
  });
  return api;
}
