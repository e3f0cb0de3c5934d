/**
 * Server configuration, parsed once at start-up from flags and the environment, with defaults that work.
 */
import { z } from 'zod';

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
    logLevel: pick(flags.logLevel, env.LOG_LEVEL),
  });
}
