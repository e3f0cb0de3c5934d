/**
 * Server configuration, parsed once at start-up from flags and the environment, with defaults that work.
 */
import { z } from 'zod';
import { retentionConfigShape } from './jobs/retention.js';

export const configSchema = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(8080),
  host: z.string().default('127.0.0.1'),
  dataDir: z.string().default('./data'),
  /** Overrides the generated admin key (TABGRID_API_KEY). */
  apiKey: z.string().min(8).optional(),
  leaseMs: z.coerce.number().int().min(100).default(120_000),
  maxFailures: z.coerce.number().int().min(1).default(5),
  sweepMs: z.coerce.number().int().min(10).default(1000),
  /** A pipeline stage's task waits this long for a worker that already holds its shard before others may take it. */
  shardAffinityMs: z.coerce.number().int().min(0).default(10_000),
  /** On SIGTERM, how long to wait for results in flight before closing. */
  shutdownGraceMs: z.coerce.number().int().min(0).default(5000),
  maxModelBytes: z.coerce.number().int().min(1).default(256 * 2 ** 20),
  maxDatasetBytes: z.coerce.number().int().min(1).default(1024 * 2 ** 20),
  maxMessageBytes: z.coerce.number().int().min(1024).default(64 * 2 ** 20),
  /** REST calls a minute per API key (or per address without one). */
  rateLimitPerMinute: z.coerce.number().int().min(1).default(1200),
  /** Interactive requests (POST /api/v1/infer) a minute per API key: apps call it often, so it has its own limit. */
  inferRatePerMinute: z.coerce.number().int().min(1).default(60_000),
  // ---- Trust on the open internet ----
  /** Read the client's address from X-Forwarded-For (behind a reverse proxy); off by default, when it is forgeable. */
  trustProxy: z.preprocess((v) => v === true || v === 'true' || v === '1', z.boolean()).default(false),
  /** IPv4 addresses in one /N count as one network origin (32: each address its own; 24 widens it). IPv6 is always /64. */
  ipv4OriginPrefix: z.coerce.number().int().min(8).max(32).default(32),
  /** Worker connections at once from one network origin. */
  maxConnectionsPerOrigin: z.coerce.number().int().min(1).default(64),
  /** Largest socket message (bytes) a connection may send before its worker:hello. */
  preHelloMaxBytes: z.coerce.number().int().min(256).default(16 * 1024),
  /** Socket events a second per connection (a burst of twice that is allowed). */
  socketEventsPerSecond: z.coerce.number().int().min(1).default(200),
  /** Largest number of items in one job, and of tasks (items / batch x stages) it may make. */
  maxJobItems: z.coerce.number().int().min(1).default(10_000_000),
  maxJobTasks: z.coerce.number().int().min(1).default(200_000),
  /** Leases a newcomer's worker may hold at once; a vetted volunteer's grows with its record up to MAX_SLOTS x 2. */
  newcomerLeases: z.coerce.number().int().min(1).default(2),
  /** Leases the newcomers of one network origin may hold together (fresh identities hoarding); vetted ones do not count. */
  newcomerLeasesPerOrigin: z.coerce.number().int().min(1).default(32),
  /** Share of one core the server may spend recomputing accepted results as audits. */
  auditCpuShare: z.coerce.number().min(0).max(1).default(0.25),
  /** Base chance that an accepted result is audited (young volunteers' results: 5x, up to 1). */
  auditRate: z.coerce.number().min(0).max(1).default(0.03),
  /** How old (ms) a volunteer must be, besides its canaries and confirmed results, before it is vetted. */
  vetTenureMs: z.coerce.number().int().min(0).default(60_000),
  /** When set, `GET /metrics` needs `Authorization: Bearer <token>` (TABGRID_METRICS_TOKEN); unset, the metrics are open. */
  // ---- Retention (server/jobs/retention.ts): retainDays, blobGraceMs, retentionSweepMs ----
  ...retentionConfigShape,
  // ---- Several servers on one database (docs/scale-out.md) ----
  /** Where the state lives: unset, SQLite in the data folder; `postgres://USER@HOST:PORT/DB` shares it with other servers. */
  store: z.string().regex(/^postgres(ql)?:\/\//, 'the store is a postgres:// URL (unset: SQLite in the data folder)').optional(),
  /** This server's URL as workers reach it (told to the workers of the other servers); default http://HOST:PORT. */
  publicUrl: z.string().url().optional(),
  /** How often a server on a shared database says it is alive and claims work; how long silence means it is dead. */
  clusterTickMs: z.coerce.number().int().min(50).default(500),
  clusterTtlMs: z.coerce.number().int().min(200).default(5000),
  metricsToken: z.string().min(8, 'the metrics token needs 8 characters or more').optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type Config = z.infer<typeof configSchema>;

/** Flags win over the environment; unset values take the defaults. */
export function loadConfig(flags: Partial<Record<keyof Config, unknown>>, env: NodeJS.ProcessEnv = process.env): Config {
  const pick = (flag: unknown, envValue: string | undefined) => (flag !== undefined ? flag : envValue || undefined);
  return configSchema.parse({
    port: pick(flags.port, env.PORT),
    host: pick(flags.host, env.HOST),
    dataDir: pick(flags.dataDir, env.TABGRID_DATA),
    apiKey: pick(flags.apiKey, env.TABGRID_API_KEY),
    leaseMs: pick(flags.leaseMs, env.TABGRID_LEASE_MS),
    maxFailures: flags.maxFailures,
    sweepMs: flags.sweepMs,
    shardAffinityMs: pick(flags.shardAffinityMs, env.TABGRID_SHARD_AFFINITY_MS),
    shutdownGraceMs: pick(flags.shutdownGraceMs, env.TABGRID_SHUTDOWN_GRACE_MS),
    maxModelBytes: pick(flags.maxModelBytes, env.TABGRID_MAX_MODEL_BYTES),
    maxDatasetBytes: pick(flags.maxDatasetBytes, env.TABGRID_MAX_DATASET_BYTES),
    maxMessageBytes: flags.maxMessageBytes,
    rateLimitPerMinute: pick(flags.rateLimitPerMinute, env.TABGRID_RATE_LIMIT),
    inferRatePerMinute: pick(flags.inferRatePerMinute, env.TABGRID_INFER_RATE_LIMIT),
    trustProxy: pick(flags.trustProxy, env.TABGRID_TRUST_PROXY),
    ipv4OriginPrefix: pick(flags.ipv4OriginPrefix, env.TABGRID_IPV4_ORIGIN_PREFIX),
    maxConnectionsPerOrigin: pick(flags.maxConnectionsPerOrigin, env.TABGRID_MAX_CONNECTIONS_PER_ORIGIN),
    preHelloMaxBytes: flags.preHelloMaxBytes,
    socketEventsPerSecond: pick(flags.socketEventsPerSecond, env.TABGRID_SOCKET_EVENTS_PER_SECOND),
    maxJobItems: pick(flags.maxJobItems, env.TABGRID_MAX_JOB_ITEMS),
    maxJobTasks: pick(flags.maxJobTasks, env.TABGRID_MAX_JOB_TASKS),
    newcomerLeases: flags.newcomerLeases,
    newcomerLeasesPerOrigin: pick(flags.newcomerLeasesPerOrigin, env.TABGRID_NEWCOMER_LEASES_PER_ORIGIN),
    auditCpuShare: pick(flags.auditCpuShare, env.TABGRID_AUDIT_CPU_SHARE),
    auditRate: pick(flags.auditRate, env.TABGRID_AUDIT_RATE),
    vetTenureMs: pick(flags.vetTenureMs, env.TABGRID_VET_TENURE_MS),
    retainDays: pick(flags.retainDays, env.TABGRID_RETAIN_DAYS),
    blobGraceMs: pick(flags.blobGraceMs, env.TABGRID_BLOB_GRACE_MS),
    retentionSweepMs: flags.retentionSweepMs,
    store: pick(flags.store, env.TABGRID_STORE),
    publicUrl: pick(flags.publicUrl, env.TABGRID_PUBLIC_URL),
    clusterTickMs: pick(flags.clusterTickMs, env.TABGRID_CLUSTER_TICK_MS),
    clusterTtlMs: pick(flags.clusterTtlMs, env.TABGRID_CLUSTER_TTL_MS),
    metricsToken: pick(flags.metricsToken, env.TABGRID_METRICS_TOKEN),
    logLevel: pick(flags.logLevel, env.LOG_LEVEL),
  });
}
