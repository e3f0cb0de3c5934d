/**
 * The one place where errors become wire form, for both transports. AppErrors keep their code and
 * message; zod errors become INVALID_PAYLOAD naming the field; over HTTP, the client errors that express
 * and its middleware raise (a body too large or not JSON, a static file that is not there) keep their
 * status; anything else is logged and reported as a generic INTERNAL error.
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
  CONFLICT: 409, LEASE_NOT_HELD: 409, QUARANTINED: 403, TOO_LARGE: 413, RATE_LIMITED: 429, SHUTTING_DOWN: 503, UNAVAILABLE: 503, RUN_FAILED: 502, CANCELLED: 409, PAUSED: 503, INTERNAL: 500,
};

export const httpStatus = (code: ErrorCode) => STATUS[code];

/** What express's middleware throws for a client's mistake (http-errors: body-parser, serve-static, sendFile). */
interface HttpishError { type?: string; status?: number; statusCode?: number; expose?: boolean; message?: string }

/** An error as an HTTP answer; null when there is no one left to answer (the client went away). */
export function toHttpError(err: unknown, log: Logger): { status: number; wire: WireError } | null {
  const e = (err ?? {}) as HttpishError;
  if (e.type === 'request.aborted') return null;
  if (e.type === 'entity.too.large') return { status: 413, wire: { code: 'TOO_LARGE', message: `request body too large: ${e.message}` } };
  if (e.type === 'entity.parse.failed') return { status: 400, wire: { code: 'INVALID_PAYLOAD', message: `malformed JSON body: ${e.message}` } };
  const status = err instanceof AppError ? undefined : e.status ?? e.statusCode;
  // A file that is not there (serve-static, sendFile: their ENOENT carries 404, unexposed) is the client's 404,
  // not the server's 500 with a stack trace in the log.
  if (status === 404) return { status, wire: { code: 'NOT_FOUND', message: 'not found' } };
  if (e.expose && typeof status === 'number' && status >= 400 && status < 500) {
    return { status, wire: { code: status === 413 ? 'TOO_LARGE' : 'INVALID_PAYLOAD', message: e.message ?? 'bad request' } };
  }
  const wire = toWireError(err, log);
  return { status: httpStatus(wire.code), wire };
}
