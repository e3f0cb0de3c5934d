/**
 * API keys, for admin keys only: list (never a key or its hash), create (the key shown once), weigh (its share
 * in the fair share between researchers), revoke (refused on its next call; the last admin key cannot be revoked).
 */
import express from 'express';
import { createKeySchema, keyIdSchema, keyPatchSchema } from '../../shared/rest-types.js';
import type { ApiKeys } from '../auth/api-keys.js';
import { requireAdmin } from './rest-auth.js';

export function keyRouter(deps: { keys: ApiKeys; auth: express.RequestHandler }): express.Router {
  const { keys, auth } = deps;
  const r = express.Router();
  const json = express.json({ limit: '16kb' });

  r.get('/api/v1/keys', auth, (req, res) => {
    requireAdmin(req, 'listing keys');
    res.json({ keys: keys.list() });
  });

  r.post('/api/v1/keys', auth, json, (req, res) => {
    requireAdmin(req, 'creating keys');
    const body = createKeySchema.parse(req.body ?? {});
    res.status(201).json(keys.create(body.name, body.admin));
  });

  r.patch('/api/v1/keys/:id', auth, json, (req, res) => {
    requireAdmin(req, 'setting a key\'s weight');
    const body = keyPatchSchema.parse(req.body ?? {});
    res.json(keys.setWeight(keyIdSchema.parse(req.params.id), body.weight));
  });

  r.delete('/api/v1/keys/:id', auth, (req, res) => {
    requireAdmin(req, 'revoking keys');
    res.json(keys.revoke(keyIdSchema.parse(req.params.id)));
  });

  return r;
}
