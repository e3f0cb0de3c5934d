/**
 * Who is calling the REST API, and how often. The key is verified before the rate limit counts the call,
 * so the limit is per verified key, and per client address for everything else: a caller cannot escape it
 * by sending a different made-up key each time.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import { AppError } from '../../shared/errors.js';
import type { ApiKeys } from '../auth/api-keys.js';
import type { ApiKeyRow } from '../store/store.js';

export type Authed = Request & { apiKey?: ApiKeyRow; keyRefused?: boolean };

/** The API key the request presents (a Bearer token, or X-API-Key), as sent. */
export const presented = (req: Request): string | undefined => {
  const header = req.get('authorization');
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : req.get('x-api-key');
};

/** Attaches the caller's key when it verifies; refuses nothing (routes that need a key say so). */
export function identifyKey(keys: ApiKeys): RequestHandler {
  return (req: Authed, _res: Response, next: NextFunction) => {
    const key = presented(req);
    if (key) {
      const row = keys.verify(key);
      if (row) req.apiKey = row;
      else req.keyRefused = true;
    }
    next();
  };
}

/** Refuses a call without a verified key (after `identifyKey`). */
export const requireKey: RequestHandler = (req: Authed, _res, next) => {
  if (req.apiKey) return next();
  next(new AppError('UNAUTHORIZED', req.keyRefused
    ? 'unknown or revoked API key'
    : 'an API key is required (Authorization: Bearer <key>)'));
};

/** The caller's key, for a route behind `requireKey`. */
export const keyOf = (req: Request): ApiKeyRow => (req as Authed).apiKey!;

/** Throws unless the caller holds an admin key. */
export function requireAdmin(req: Request, what: string): void {
  if (!(req as Authed).apiKey?.admin) throw new AppError('UNAUTHORIZED', `${what} needs an admin key`);
}

/** `perMinute` calls a minute per verified key, else per client address (`req.ip`, which honours 'trust proxy'). */
export function restRateLimit(perMinute: number): RequestHandler {
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: (req) => {
      const key = (req as Authed).apiKey;
      return key ? `key:${key.id}` : `ip:${ipKeyGenerator(req.ip ?? '')}`;
    },
    // Without trustProxy a forwarded header is a client's say-so, ignored on purpose: no warning per request.
    validate: { xForwardedForHeader: false },
    handler: (_req, _res, next) => next(new AppError('RATE_LIMITED', `more than ${perMinute} requests a minute; slow down`)),
  });
}
