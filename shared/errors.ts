/** Error codes shared by both transports; the wire form is `{ code, message }`. */
export const ErrorCode = {
  INVALID_PAYLOAD: 'INVALID_PAYLOAD',
  UNAUTHORIZED: 'UNAUTHORIZED',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  INVALID_MODEL: 'INVALID_MODEL',
  SHAPE_MISMATCH: 'SHAPE_MISMATCH',
  LEASE_NOT_HELD: 'LEASE_NOT_HELD',
  QUARANTINED: 'QUARANTINED',
  RATE_LIMITED: 'RATE_LIMITED',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  TOO_LARGE: 'TOO_LARGE',
  /** No worker could serve the request in time (interactive inference). */
  UNAVAILABLE: 'UNAVAILABLE',
  /** A worker's refusals of an interactive request: its model failed, it was withdrawn, the worker is paused. */
  RUN_FAILED: 'RUN_FAILED',
  CANCELLED: 'CANCELLED',
  PAUSED: 'PAUSED',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface WireError { code: ErrorCode; message: string }

/** The one error type the server throws on purpose; anything else is reported as INTERNAL. */
export class AppError extends Error {
  constructor(readonly code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
  }
}
