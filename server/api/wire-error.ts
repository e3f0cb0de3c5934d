/**
 * The one place where errors become wire form, for both transports. AppErrors keep their code and
 * message; zod errors become INVALID_PAYLOAD naming the field; anything else is logged and reported
 * as a generic INTERNAL error.
 */
import type { Logger } from 'pino';
import { ZodError } from 'zod';
import { AppError, type ErrorCode, type WireError } from '../../shared/errors.js';

export function toWireError(err: unknown, log: Logger): WireError {
  if (err instanceof AppError) return { code: err.code, message: err.message };
  if (err instanceof ZodError) {
    const msg = err.issues.slice(0, 5).map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ');
    return { code: 'INVALID_PAYLOAD', message: msg };
  }
  log.error({ err }, 'unexpected error');
  return { code: 'INTERNAL', message: 'internal error' };
}

const STATUS: Record<ErrorCode, number> = {
  INVALID_PAYLOAD: 400, SHAPE_MISMATCH: 400, INVALID_MODEL: 400, UNAUTHORIZED: 401, NOT_FOUND: 404,
  CONFLICT: 409, LEASE_NOT_HELD: 409, QUARANTINED: 403, TOO_LARGE: 413, RATE_LIMITED: 429, SHUTTING_DOWN: 503, INTERNAL: 500,
};

export const httpStatus = (code: ErrorCode) => STATUS[code];
