/**
 * The worker protocol (socket.io event maps) and the REST bodies, as zod schemas with derived types.
 * Both sides use these: the server parses every payload with them before acting, the page and the
 * headless worker type their socket with the same maps. Tensors travel as binary attachments (each tensor
 * its own; both sides use socket parsers that accept as many as the protocol allows, see MAX_OUTPUTS).
 */
import { z } from 'zod';
import { DTYPES } from './tensor.js';
import type { WireError } from './errors.js';
import type { InferAnswer, InferRun, InferWarm, InferWarmAnswer } from './infer.js';

export const MAX_SLOTS = 16;
/** Pipeline stages of one job at most (a model split into that many shards). */
export const MAX_STAGES = 32;
export const MAX_DIMS = 8;
/** Tensors one result may carry: the server's socket parser accepts this many binary attachments in a packet. */
export const MAX_OUTPUTS = 64;
/** Entries in a hello's `limits` (WebGPU limits and device memory: a handful in practice). */
export const MAX_HELLO_LIMITS = 32;
/** Cached models a hello may name; the page keeps 8. Bounded so a hello stays under the pre-hello message limit. */
export const MAX_HELLO_CACHED = 64;

const binary = z.custom<ArrayBuffer | Uint8Array>(
  (v) => v instanceof ArrayBuffer || v instanceof Uint8Array,
  { message: 'expected binary data (ArrayBuffer or Buffer)' },
);

export const wireTensorSchema = z.object({
  name: z.string().min(1).max(256),
  dtype: z.enum(DTYPES as [string, ...string[]]).transform((d) => d as (typeof DTYPES)[number]),
  dims: z.array(z.number().int().min(0).max(2 ** 31)).max(MAX_DIMS),
  data: binary,
});
export type WireTensor = z.input<typeof wireTensorSchema>;

export const adapterInfoSchema = z.object({
  vendor: z.string().max(128).optional(),
  architecture: z.string().max(128).optional(),
  device: z.string().max(128).optional(),
  description: z.string().max(256).optional(),
  isFallbackAdapter: z.boolean().optional(),
});
export type AdapterInfo = z.infer<typeof adapterInfoSchema>;

/**
 * Named numbers, at most MAX_HELLO_LIMITS of them (z.number() refuses NaN and infinities). The key count is
 * checked before the entries are parsed, so an object with a hundred thousand keys is refused without walking them.
 */
const limitsSchema = z.custom<Record<string, unknown>>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length <= MAX_HELLO_LIMITS,
  { message: `expected an object of at most ${MAX_HELLO_LIMITS} limits` },
).pipe(z.record(z.string().max(64), z.number()));

export const workerHelloSchema = z.object({
  /** The volunteer's lasting secret; absent on first contact, when the server issues one. */
  token: z.string().min(16).max(128).optional(),
  kind: z.enum(['browser', 'node']),
  backends: z.array(z.string().max(32)).max(8),
  adapter: adapterInfoSchema.optional(),
  limits: limitsSchema.optional(),
  agent: z.string().max(256).optional(),
  /** Models (shards) the worker already holds in its cache, by hash. */
  cached: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(MAX_HELLO_CACHED).optional(),
  /**
   * The server's signed word for the page that embeds the widget (handed out with /widget.js): that site is
   * credited too. Only a valid, unexpired token credits a site.
   */
  siteToken: z.string().max(512).optional(),
  /** Sent by older widget frames; accepted and ignored, since a worker's own word names no site. */
  site: z.string().max(256).optional(),
  /** The worker answers interactive requests (`infer:*` events, shared/infer.ts). */
  interactive: z.boolean().optional(),
});
export type WorkerHello = z.infer<typeof workerHelloSchema>;

export const workRequestSchema = z.object({ slots: z.number().int().min(1).max(MAX_SLOTS) });
export type WorkRequest = z.infer<typeof workRequestSchema>;

export const taskResultSchema = z.object({
  replicaId: z.string().min(1).max(64),
  outputs: z.array(wireTensorSchema).min(1).max(MAX_OUTPUTS),
  backend: z.string().max(32),
  runMs: z.number().min(0).max(1e9),
  /** Free slots to fill: the result's ack then carries the next tasks, saving a `work:request` round trip. */
  next: z.number().int().min(0).max(MAX_SLOTS).optional(),
});
export type TaskResult = z.input<typeof taskResultSchema>;

/** The answer to a result: whether it counted and, when the result asked for `next`, the tasks leased in reply
 * (absent when none could be asked for, e.g. the server is draining: the worker then asks with `work:request`). */
export interface ResultAccepted { accepted: boolean; tasks?: TaskAssignment[] }

export const taskErrorSchema = z.object({
  replicaId: z.string().min(1).max(64),
  message: z.string().max(2000),
});
export type TaskErrorReport = z.infer<typeof taskErrorSchema>;

export const releaseSchema = z.object({ replicaIds: z.array(z.string().min(1).max(64)).max(MAX_SLOTS * 4) });
export type Release = z.infer<typeof releaseSchema>;

/** `volunteer:stats` takes no arguments; whatever is sent is dropped. */
export const statsRequestSchema = z.object({});

export const profileSchema = z.object({
  name: z.string().trim().max(40).optional(),
  team: z.string().trim().max(40).optional(),
});
export type Profile = z.infer<typeof profileSchema>;

/** A volunteer's own standing, as the page shows it. */
export interface VolunteerStats {
  volunteerId: string;
  name: string | null;
  team: string | null;
  credit: number;
  valid: number;
  invalid: number;
  quarantined: boolean;
  rank: number;
}

/** One replica handed to a worker: run model `modelHash` on `inputs`, answer before the lease ends. */
export interface TaskAssignment {
  replicaId: string;
  taskId: string;
  jobId: string;
  modelHash: string;
  /** Where to fetch the model bytes (content-addressed, immutable). */
  modelUrl: string;
  inputs: WireTensor[];
  leaseMs: number;
}

export type AckResponse<T extends object = object> = ({ ok: true } & T) | { ok: false; error: WireError };
export type Ack<T extends object = object> = (res: AckResponse<T>) => void;

/** Other servers a hello's ack may name, at most; a worker keeps no more than this many in its rotation either. */
export const MAX_SERVERS = 16;

/**
 * One of the other servers a hello's ack names (a public URL), checked by the worker before it adds the server to
 * those it will try: what a server says is input like any other.
 */
export const serverUrlSchema = z.url({ protocol: /^https?$/ }).max(2048);

export interface HelloAccepted {
  workerId: string;
  volunteerId: string;
  token: string;
  /**
   * The other servers of the same network, at most MAX_SERVERS: where a worker goes when this one cannot be
   * reached. Absent from older servers and from a server that stands alone.
   */
  servers?: string[];
}

export interface ClientToServerEvents {
  'worker:hello': (hello: WorkerHello, ack: Ack<HelloAccepted>) => void;
  'work:request': (req: WorkRequest, ack: Ack<{ tasks: TaskAssignment[] }>) => void;
  'task:result': (res: TaskResult, ack: Ack<ResultAccepted>) => void;
  'task:error': (err: TaskErrorReport, ack: Ack) => void;
  /** Hands leases back at once (Stop, pause, the GPU lost), so the tasks go to someone else now. */
  'task:release': (req: Release, ack: Ack<{ released: number }>) => void;
  'volunteer:profile': (profile: Profile, ack: Ack<{ stats: VolunteerStats }>) => void;
  'volunteer:stats': (req: object, ack: Ack<{ stats: VolunteerStats }>) => void;
}

export interface ServerToClientEvents {
  /** Tasks pushed to a worker that asked for more slots than were free at the time. */
  'task:assign': (tasks: TaskAssignment[]) => void;
  /** The server withdrew these replicas (job cancelled or task settled); stop working on them. */
  'task:cancel': (replicaIds: string[]) => void;
  /** Keep an interactive session of this model ready (apart from batch sessions); ack once it is loaded. */
  'infer:warm': (req: InferWarm, ack: Ack<InferWarmAnswer>) => void;
  /** Run one interactive request now, ahead of batch work; answer on the ack. */
  'infer:run': (req: InferRun, ack: Ack<InferAnswer>) => void;
  /** Another worker answered this request first: drop it if it has not started (its answer is not needed). */
  'infer:cancel': (requestId: string) => void;
  /** No interactive traffic for this model lately: its interactive session may go. */
  'infer:cool': (modelHash: string) => void;
}

// ---- REST bodies ----

export const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'expected a SHA-256 hex digest');

export const createJobSchema = z.object({
  model: sha256Schema,
  /** Input name -> data set hash (from POST /api/v1/datasets). */
  inputs: z.record(z.string().min(1).max(256), sha256Schema),
  name: z.string().max(200).optional(),
  batchSize: z.number().int().min(1).max(65536).default(16),
  replicas: z.number().int().min(1).max(10).default(2),
  maxReplicas: z.number().int().min(1).max(20).optional(),
  rtol: z.number().min(0).max(1).default(1e-3),
  atol: z.number().min(0).max(1e6).default(1e-4),
  priority: z.number().int().min(-100).max(100).default(0),
  /** Pipeline stages: the model is split so each volunteer runs one stage (1 runs it whole). */
  stages: z.number().int().min(1).max(MAX_STAGES).default(1),
  /** Or: tensor names to cut after (N names give N + 1 stages). */
  cuts: z.array(z.string().min(1).max(256)).min(1).max(31).optional(),
  /** Let trusted volunteers' work be accepted on one replica; false makes `replicas` a hard floor. */
  adaptive: z.boolean().default(true),
  /** Fraction of tasks the server answers itself, as known-answer tests of volunteers (0 turns them off). */
  canaryRate: z.number().min(0).max(0.5).default(0.02),
});
export type CreateJobRequest = z.input<typeof createJobSchema>;
export type CreateJob = z.infer<typeof createJobSchema>;

export const JobStatus = {
  running: 'running',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export interface TensorSpec { name: string; dtype: string; shape: (number | string)[] }

export interface JobView {
  id: string;
  name: string | null;
  status: JobStatus;
  model: string;
  items: number;
  batchSize: number;
  replicas: number;
  maxReplicas: number;
  rtol: number;
  atol: number;
  priority: number;
  adaptive: boolean;
  canaryRate: number;
  createdAt: number;
  finishedAt: number | null;
  error: string | null;
  tasks: { total: number; done: number; failed: number; pending: number; running: number; canaries: number };
  replicasIssued: number;
  outputs: TensorSpec[];
  stages: { stage: number; model: string; total: number; done: number; failed: number; pending: number; running: number }[];
  failures: { taskId: string; stage: number; batch: number; reason: string }[];
  /** Tasks accepted after the job ended with a volunteer since quarantined: `tabgrid rerun JOB --tainted` recomputes them. */
  tainted: number;
}
