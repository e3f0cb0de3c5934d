/**
 * The REST API's answers as zod schemas, for the OpenAPI document (server/api/openapi.ts). The answers' types
 * are declared as interfaces in rest-types.ts, protocol.ts and dashboard-protocol.ts, which clients import; each
 * schema here is checked against its interface at compile time (`Same` below), both ways, so a field added to
 * one and not the other fails `tsc` rather than describing the API wrongly. The request bodies are not repeated
 * here: the document takes the schemas the routes parse with.
 */
import { z } from 'zod';
import type { ClassAgreement, WorkerView } from './dashboard-protocol.js';
import { ErrorCode } from './errors.js';
import { JobStatus, type JobView, type TensorSpec, adapterInfoSchema } from './protocol.js';
import type {
  ApiKeyView, CreatedApiKey, DatasetView, DeletedJob, JobDiskView, ModelView, ReplicaView, RerunResult, ServerRunsView, VolunteerRecord,
} from './rest-types.js';

/** Every failure: `{ error: { code, message } }` (server/api/wire-error.ts). */
export const errorResponseSchema = z.object({
  error: z.object({ code: z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]), message: z.string() }),
}).meta({ description: 'What every failure answers; `code` is one of a closed set, `message` says why for a person.' });

const millis = z.number().int().meta({ description: 'milliseconds since the Unix epoch' });
const hash = z.string().regex(/^[0-9a-f]{64}$/);

export const tensorSpecSchema = z.object({ name: z.string(), dtype: z.string(), shape: z.array(z.union([z.number(), z.string()])) });

const counts = { total: z.number().int(), done: z.number().int(), failed: z.number().int(), pending: z.number().int(), running: z.number().int() };

export const jobViewSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  status: z.enum(Object.values(JobStatus) as [JobStatus, ...JobStatus[]]),
  model: hash,
  items: z.number().int(),
  batchSize: z.number().int(),
  replicas: z.number().int(),
  maxReplicas: z.number().int(),
  rtol: z.number(),
  atol: z.number(),
  priority: z.number().int(),
  adaptive: z.boolean(),
  canaryRate: z.number(),
  createdAt: millis,
  finishedAt: millis.nullable(),
  error: z.string().nullable(),
  tasks: z.object({ ...counts, canaries: z.number().int() }),
  replicasIssued: z.number().int(),
  outputs: z.array(tensorSpecSchema),
  stages: z.array(z.object({ stage: z.number().int(), model: hash, ...counts })),
  failures: z.array(z.object({ taskId: z.string(), stage: z.number().int(), batch: z.number().int(), reason: z.string() })),
  tainted: z.number().int(),
});

export const jobListSchema = z.object({ jobs: z.array(jobViewSchema) });

export const jobDiskViewSchema = z.object({
  jobId: z.string(),
  outputs: z.number().int().meta({ description: 'bytes of its replicas\' outputs' }),
  results: z.number().int().meta({ description: 'bytes of the results the server computed itself' }),
  keepReplicaOutputs: z.boolean(),
  files: z.array(z.object({ kind: z.enum(['model', 'dataset']), hash, size: z.number().int(), shared: z.boolean() })),
  own: z.number().int().meta({ description: 'bytes the job alone holds' }),
});

export const deletedJobSchema = z.object({
  id: z.string(), status: jobViewSchema.shape.status, bytes: z.number().int().meta({ description: 'bytes of outputs and results deleted with it' }),
});

export const modelViewSchema = z.object({
  hash, size: z.number().int(), inputs: z.array(tensorSpecSchema), outputs: z.array(tensorSpecSchema), opsets: z.record(z.string(), z.number().int()),
  weightBytes: z.number().int(), largestWeight: z.number().int(), createdAt: millis,
});

export const datasetViewSchema = z.object({ hash, dtype: z.string(), shape: z.array(z.number().int()), size: z.number().int(), createdAt: millis });

export const apiKeyViewSchema = z.object({
  id: z.string(), name: z.string(), admin: z.boolean(), createdAt: millis, revokedAt: millis.nullable(), weight: z.number(),
});
export const createdApiKeySchema = apiKeyViewSchema.extend({ key: z.string().meta({ description: 'shown this once; stored only as a hash' }) });
export const apiKeyListSchema = z.object({ keys: z.array(apiKeyViewSchema) });

export const rerunResultSchema = z.object({ job: jobViewSchema, reopened: z.number().int() });

export const replicaViewSchema = z.object({
  id: z.string(), taskId: z.string(), status: z.string(), volunteer: z.string(), workerClass: z.string(), single: z.boolean(),
  backend: z.string().nullable(), runMs: z.number().nullable(), error: z.string().nullable(), leasedAt: millis, leaseExpires: millis,
  returnedAt: millis.nullable(),
  volunteerId: z.string().optional(), workerId: z.string().optional(), origin: z.string().nullable().optional(), site: z.string().nullable().optional(),
});
export const replicaListSchema = z.object({ replicas: z.array(replicaViewSchema) });

export const volunteerRecordSchema = z.object({
  id: z.string(), name: z.string().nullable(), team: z.string().nullable(), valid: z.number().int(), invalid: z.number().int(), errors: z.number().int(),
  streak: z.number().int(), canaryPassed: z.number().int(), canaryFailed: z.number().int(), credit: z.number(), quarantinedAt: millis.nullable(), createdAt: millis,
});
export const volunteerListSchema = z.object({ volunteers: z.array(volunteerRecordSchema) });

export const serverRunsViewSchema = z.object({
  canaries: z.number().int(), checks: z.number().int(), audits: z.number().int(), auditsSkipped: z.number().int(), stale: z.number().int(), failed: z.number().int(),
  busyMs: z.number(), busyShare: z.number(),
});

export const classAgreementSchema = z.object({ a: z.string(), b: z.string(), agree: z.number().int(), disagree: z.number().int(), agreement: z.number().nullable() });
export const classListSchema = z.object({ classes: z.array(classAgreementSchema) });

export const workerViewSchema = z.object({
  workerId: z.string(), volunteerId: z.string(), kind: z.enum(['browser', 'node']), backends: z.array(z.string()), adapter: adapterInfoSchema.optional(),
  site: z.string().nullable(), origin: z.string(), connectedAt: millis, server: z.string().max(2048).optional(),
});
export const workerListSchema = z.object({ workers: z.array(workerViewSchema) });

export const leaderboardSchema = z.object({
  volunteers: z.array(z.object({ name: z.string(), team: z.string().nullable(), credit: z.number(), tasks: z.number().int() })),
  teams: z.array(z.object({ team: z.string(), credit: z.number(), volunteers: z.number().int() })),
  sites: z.array(z.object({ origin: z.string(), credit: z.number(), tasks: z.number().int() })),
}).meta({ description: 'Public standings; names are display names or anonymous labels, never ids.' });

/** `GET /api/v1/health`: 200 while the server takes work, 503 with the reason while it drains (shutting down). */
export const healthSchema = z.object({ ok: z.boolean(), workers: z.number().int().optional(), reason: z.string().optional() });
export type HealthView = z.infer<typeof healthSchema>;

/** `GET /api/v1/ready`: 200 when the store answers and the server is not draining; 503 with the reason otherwise. */
export const readySchema = z.object({ ok: z.boolean(), reason: z.string().optional() });
export type ReadyView = z.infer<typeof readySchema>;

// ---- Each schema matches its interface, both ways (a compile-time check; nothing runs) ----
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const same = <A, B>(ok: Same<A, B>): Same<A, B> => ok;
export const schemasMatchTypes = [
  same<z.infer<typeof tensorSpecSchema>, TensorSpec>(true),
  same<z.infer<typeof jobViewSchema>, JobView>(true),
  same<z.infer<typeof jobDiskViewSchema>, JobDiskView>(true),
  same<z.infer<typeof deletedJobSchema>, DeletedJob>(true),
  same<z.infer<typeof modelViewSchema>, ModelView>(true),
  same<z.infer<typeof datasetViewSchema>, DatasetView>(true),
  same<z.infer<typeof apiKeyViewSchema>, ApiKeyView>(true),
  same<z.infer<typeof createdApiKeySchema>, CreatedApiKey>(true),
  same<z.infer<typeof rerunResultSchema>, RerunResult>(true),
  same<z.infer<typeof replicaViewSchema>, ReplicaView>(true),
  same<z.infer<typeof volunteerRecordSchema>, VolunteerRecord>(true),
  same<z.infer<typeof serverRunsViewSchema>, ServerRunsView>(true),
  same<z.infer<typeof classAgreementSchema>, ClassAgreement>(true),
  same<z.infer<typeof workerViewSchema>, WorkerView>(true),
] as const;
