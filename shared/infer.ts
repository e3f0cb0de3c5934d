/**
 * Interactive inference: one request, one answer. The REST body (`POST /api/v1/infer`) with its tensors as
 * base64 in JSON, the answer, and what travels to a worker for it (its own events, apart from batch tasks:
 * `infer:warm` keeps a session ready, `infer:run` runs one request and answers on its ack, `infer:cancel`
 * withdraws a hedged request the other worker already answered, `infer:cool` lets a warm session go).
 */
import { z } from 'zod';
import { MAX_DIMS, MAX_OUTPUTS, sha256Schema, wireTensorSchema, type WireTensor } from './protocol.js';
import { DTYPES } from './tensor.js';

/** Bytes of one request's tensors together, decoded (bounded like a socket message). */
export const INFER_MAX_BYTES = 8 * 2 ** 20;

export const inferTensorSchema = z.object({
  dtype: z.enum(DTYPES as [string, ...string[]]).transform((d) => d as (typeof DTYPES)[number]),
  dims: z.array(z.number().int().min(0).max(2 ** 31)).max(MAX_DIMS),
  /** Little-endian element bytes, base64. */
  data: z.string().max(Math.ceil((INFER_MAX_BYTES * 4) / 3) + 4),
});
export type InferTensor = z.input<typeof inferTensorSchema>;

export const inferRequestSchema = z.object({
  model: sha256Schema,
  inputs: z.record(z.string().min(1).max(256), inferTensorSchema).refine((o) => Object.keys(o).length <= MAX_OUTPUTS, `at most ${MAX_OUTPUTS} inputs`),
  /** 1: a vetted volunteer answers (audited now and then); 2: two volunteers of distinct network origins must agree. */
  replicas: z.union([z.literal(1), z.literal(2)]).default(1),
  /** How long to wait for a worker's answer before 503 (the default suits a small model). */
  timeoutMs: z.number().int().min(50).max(60_000).default(5_000),
  rtol: z.number().min(0).max(1).default(1e-3),
  atol: z.number().min(0).max(1e6).default(1e-4),
});
export type InferRequest = z.input<typeof inferRequestSchema>;

/**
 * The binary variant, for large tensors: the body is the inputs packed (a little-endian u32 header length, a JSON
 * header `[{ name, dtype, dims }]`, then each tensor's bytes in order, as shared/tensor-pack.ts writes them), with
 * this content type, and the other fields in the query string. An `Accept` of this type gets the outputs packed
 * the same way, with the answer's other fields in `X-TabGrid-*` headers.
 */
export const TENSORS_CONTENT_TYPE = 'application/x-tabgrid-tensors';
/** Bytes of one binary request's tensors together. */
export const INFER_MAX_BINARY_BYTES = 32 * 2 ** 20;

export const inferQuerySchema = z.object({
  model: sha256Schema,
  replicas: z.coerce.number().pipe(z.union([z.literal(1), z.literal(2)])).default(1),
  timeoutMs: z.coerce.number().int().min(50).max(60_000).default(5_000),
  rtol: z.coerce.number().min(0).max(1).default(1e-3),
  atol: z.coerce.number().min(0).max(1e6).default(1e-4),
});

export const InferVerified = { vettedVolunteer: 'vetted-volunteer', twoOrigins: 'two-origins' } as const;
export type InferVerified = (typeof InferVerified)[keyof typeof InferVerified];

/** The answer, as a schema (for the API's description); `InferResponse` is its type. */
export const inferResponseSchema = z.object({
  outputs: z.record(z.string(), z.object({ dtype: z.string(), dims: z.array(z.number().int()), data: z.string() })),
  verified: z.enum(['vetted-volunteer', 'two-origins']),
  ms: z.number(),
  runMs: z.number(),
  hedged: z.boolean(),
  backend: z.string(),
});

export interface InferResponse {
  outputs: Record<string, InferTensor>;
  /** How the answer was trusted: one vetted volunteer's (audited now and then), or two agreeing across origins. */
  verified: InferVerified;
  /** From the request's arrival to the answer. */
  ms: number;
  /** The model's own run time on the worker that answered (the slower of two for replicas 2). */
  runMs: number;
  /** Whether a second worker was asked because the first had not answered by its expected time. */
  hedged: boolean;
  backend: string;
}

// ---- between the server and a worker ----

const modelUrlSchema = z.string().min(1).max(2048);
/** What a worker checks of `infer:warm` and `infer:run` (the server's word, but a worker parses every payload). */
export const inferWarmSchema = z.object({ modelHash: sha256Schema, modelUrl: modelUrlSchema });
export const inferRunSchema = z.object({
  requestId: z.string().min(1).max(128),
  modelHash: sha256Schema,
  modelUrl: modelUrlSchema,
  inputs: z.array(wireTensorSchema).max(MAX_OUTPUTS),
});

export interface InferWarm { modelHash: string; modelUrl: string }
export interface InferRun { requestId: string; modelHash: string; modelUrl: string; inputs: WireTensor[] }

/** Why a worker did not answer: quick refusals (PAUSED, CANCELLED) the server hedges past, or the model's error. */
export const InferErrorCode = { RUN_FAILED: 'RUN_FAILED', CANCELLED: 'CANCELLED', PAUSED: 'PAUSED', INVALID_PAYLOAD: 'INVALID_PAYLOAD' } as const;
export type InferErrorCode = (typeof InferErrorCode)[keyof typeof InferErrorCode];

/** A worker's answer to `infer:run` (parsed by the server: the worker is not trusted). */
export const inferAnswerSchema = z.object({
  outputs: z.array(wireTensorSchema).max(MAX_OUTPUTS),
  runMs: z.number().min(0).max(3_600_000),
  backend: z.string().max(32),
});
export type InferAnswer = z.input<typeof inferAnswerSchema>;

export const inferWarmAnswerSchema = z.object({ backend: z.string().max(32), warmMs: z.number().min(0).max(3_600_000) });
export type InferWarmAnswer = z.input<typeof inferWarmAnswerSchema>;
