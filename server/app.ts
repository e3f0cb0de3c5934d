/**
 * createApp wires the services, the REST API, the worker sockets and the static pages onto one HTTP
 * server. It builds nothing from the environment: main.ts (or a test) passes the store, clock, logger
 * and config in.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { Server, type ServerOptions } from 'socket.io';
import { ApiKeys } from './auth/api-keys.js';
import { SiteTokens } from './auth/site-tokens.js';
import type { Config } from './config.js';
import { DatasetService } from './jobs/datasets.js';
import { JobService } from './jobs/job-service.js';
import { TaskInputs } from './jobs/task-inputs.js';
import { ModelService } from './onnx/model-service.js';
import type { Clock } from './scheduler/clock.js';
import { Scheduler } from './scheduler/scheduler.js';
import { DEFAULT_REPUTATION } from './verify/reputation.js';
import { ServerRuns } from './verify/server-runs.js';
import { AppEvents } from './events.js';
import type { BlobStore } from './store/blob-store.js';
import type { Store } from './store/store.js';
import { LiveStore } from './state/live-store.js';
import { restErrorHandler, restRouter } from './api/rest.js';
import { type TabGridIo, type WorkerInfo, attachWorkerSockets } from './api/worker-socket.js';
import { serverParser } from './api/socket-parser.js';
import { DEFAULT_DASHBOARD_TIMING, attachDashboardSocket } from './api/dashboard-socket.js';
import { assetHeaders, pageRouter } from './api/page-routes.js';
import { opsRouter } from './api/ops-routes.js';
import { openApiDocument } from './api/openapi.js';
import { type RouteEntry, listRoutes } from './api/route-list.js';
import { Metrics } from './metrics/metrics.js';
import { timedWrites } from './metrics/timed-store.js';
import { inferRoutes } from './api/infer-routes.js';
import { TickBatch } from './api/tick-batch.js';
import { PeerInfer } from './infer/peer-infer.js';
import { InferAudit } from './infer/infer-audit.js';
import { InferRouter } from './infer/infer-router.js';
import { type Claims, ClusterMember } from './cluster/cluster-member.js';
import { followStatuses } from './cluster/follow-statuses.js';
import { SlicedLiveStore } from './state/sliced-live-store.js';
import { OriginShare } from './cluster/origin-share.js';
import { clusterBus } from './api/cluster-bus.js';
import { peerViews } from './api/peer-views.js';

/** The package's folder: the nearest one above with a package.json, from server/ (tsx) as from dist/node/server/. */
export const ROOT = packageRoot(path.dirname(fileURLToPath(import.meta.url)));
export const CLIENT_DIST = path.join(ROOT, 'dist', 'client');

function packageRoot(dir: string): string {
  for (let d = dir; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) return d;
    if (path.dirname(d) === d) throw new Error(`no package.json in ${dir} or above`);
  }
}

/** The package's version, for the API document. */
function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Several servers on one database (main.ts builds it for a postgres:// store). */
export interface ClusterDeps {
  claims: Claims;
  /** socket.io's adapter on the shared database (messages between servers). */
  adapter?: ServerOptions['adapter'];
  /** The others declared this server dead: it must stop. */
  fenced(err: Error): void;
  /** Closes what the cluster opened besides the store (the adapter's connections). */
  close?(): Promise<void>;
}

export interface AppDeps { store: Store; blobs: BlobStore; clock: Clock; log: Logger; config: Config; cluster?: ClusterDeps }

export interface App {
  http: http.Server;
  io: TabGridIo;
  scheduler: Scheduler;
  /** The server's own runs (canaries, checks, audits). */
  serverRuns: ServerRuns;
  events: AppEvents;
  /** Connected workers, live. */
  workers: Map<string, WorkerInfo>;
  jobs: JobService;
  keys: ApiKeys;
  /** The Prometheus metrics (`GET /metrics`), on a registry of this app's own. */
  metrics: Metrics;
  /** Interactive inference: the warm pools and the router behind POST /api/v1/infer. */
  infer: InferRouter;
  /** Servers sharing a database: what each network origin holds on the others (absent for one server alone). */
  origins?: OriginShare;
  /** Servers sharing a database: this server's part in the network (its peers, its slices); absent for one server alone. */
  member?: ClusterMember;
  /** Every HTTP route the app registers (what the OpenAPI document must describe). */
  routes(): RouteEntry[];
  /** Listens on config.port (0 picks a free one) and starts the lease sweeper; resolves to the bound port. */
  start(): Promise<number>;
  /**
   * Stops handing out work (health answers 503 from here on), waits briefly for results in flight, closes sockets,
   * HTTP and the store.
   */
  stop(): Promise<void>;
}

export function createApp(deps: AppDeps): App {
  const { blobs, clock, log, config } = deps;
  // Counts of state are read when scraped: the jobs from the store, the workers from the socket layer's table.
  const metrics = new Metrics({
    // Reads every job's row: ~10 µs a job. A count by status in the store would make it a single indexed query.
    jobCounts: () => {
      const counts: Record<string, number> = {};
      for (const j of store.listJobs()) counts[j.status] = (counts[j.status] ?? 0) + 1;
      return counts;
    },
    workers: () => workers.values(),
  });
  // The scheduler's working state in memory, over the store as its durable log (rebuilt from it here); on a shared
  // database, only the slices of work this server claims.
  const durable = timedWrites(deps.store, (op, seconds) => metrics.storeWrite(op, seconds));
  const sliced = deps.cluster ? new SlicedLiveStore(durable) : null;
  const store = sliced ?? new LiveStore(durable);
  const events = new AppEvents();
  metrics.attach(events);
  /** Why the server takes no work: set when `stop` begins. */
  let draining: string | null = null;
  const datasets = new DatasetService({ store, blobs, clock });
  const inputs = new TaskInputs({ store, datasets });
  // Servers sharing a database count per-origin caps over all of them.
  const origins = deps.cluster ? new OriginShare() : undefined;
  // The socket events' group commit, which the server's own runs' answers join.
  const turn = new TickBatch(store, log.child({ mod: 'sockets' }), events);
  const scheduler = new Scheduler({
    store, clock, log: log.child({ mod: 'scheduler' }), origins, turn: (event, run, landed) => turn.join(event, run, landed),
    config: {
      leaseMs: config.leaseMs, maxFailures: config.maxFailures, shardAffinityMs: config.shardAffinityMs, newcomerLeases: config.newcomerLeases,
      newcomerLeasesPerOrigin: config.newcomerLeasesPerOrigin,
      auditRate: config.auditRate, reputation: { ...DEFAULT_REPUTATION, tenureMs: config.vetTenureMs },
    },
    taskInputs: (job, task) => inputs.of(job, task),
    observer: events,
  });
  // The server's own runs: canaries' known answers, checks that decide what volunteers could not, audits.
  const serverRuns = new ServerRuns({
    store, blobs, log: log.child({ mod: 'server-runs' }), taskInputs: (job, task) => inputs.of(job, task), auditCpuShare: config.auditCpuShare,
    // Only what memory holds pending is answered here: on a shared database a slice's known answers and checks are
    // computed by the server holding it (cluster/cluster-member.ts), in memory rather than through the database.
    observer: events, waitsHere: (id) => store.pendingHere(id),
  });
  serverRuns.setSink(scheduler);
  scheduler.setServerRuns(serverRuns);
  const models = new ModelService({ store, blobs, clock });
  const jobs = new JobService({ store, clock, scheduler, canaries: serverRuns, models, datasets });
  const keys = new ApiKeys({ store, clock });
  // What the server keeps, and for how long (finished jobs after retainDays, unused models and data sets, outputs).
  const retention = jobs.retention({ blobs, log: log.child({ mod: 'retention' }), settings: config });

  const app = express();
  app.disable('x-powered-by');
  // Hardened defaults for every response (nosniff, no referrer, same-origin resources...). The pages set their
  // own CSP and framing rules in api/page-routes.ts (the widget frame must be frameable from any origin, and
  // widget.js loadable by any page), so those two are left to them. No CORS: nothing here is for other origins.
  app.use(helmet({ contentSecurityPolicy: false, frameguard: false, crossOriginEmbedderPolicy: false }));
  const server = http.createServer(app);
  const io: TabGridIo = new Server(server, {
    maxHttpBufferSize: config.maxMessageBytes, serveClient: false, parser: serverParser, ...(deps.cluster?.adapter ? { adapter: deps.cluster.adapter } : {}),
  });
  const member = deps.cluster && sliced ? new ClusterMember({
    claims: deps.cluster.claims, live: sliced, scheduler, log: log.child({ mod: 'cluster' }),
    tickMs: config.clusterTickMs, ttlMs: config.clusterTtlMs, fenced: deps.cluster.fenced, origins,
    computeCanaries: (tasks) => serverRuns.compute(tasks),
  }) : null;
  if (member) {
    member.keepAlive();
    member.setBus(clusterBus(io, log.child({ mod: 'cluster' })));
    followStatuses(events, store, () => member.jobsChanged());
    events.on('volunteer:quarantined', (v) => member.quarantined(v));
  }
  const siteTokens = new SiteTokens({ dataDir: config.dataDir, clock });
  // Interactive requests: a warm volunteer answers; a sample of single answers is recomputed by the server.
  const inferAudit = new InferAudit({ blobs, log: log.child({ mod: 'infer' }), refuted: (volunteerId) => scheduler.interactiveRefuted(volunteerId) });
  const infer = new InferRouter({
    workers: scheduler.workerTable, vetted: (v) => scheduler.vetted(v), model: (hash) => store.getModel(hash), clock, log: log.child({ mod: 'infer' }),
    auditRate: config.auditRate, audit: (model, ins, outs, volunteerId) => void inferAudit.audit(model, ins, outs, volunteerId),
    peers: member ? new PeerInfer({ peers: () => member.peers(), log: log.child({ mod: 'infer' }) }) : undefined,
  });
  const workers = attachWorkerSockets({
    io, scheduler, store, clock, events, config, siteTokens, infer, log: log.child({ mod: 'sockets' }), peers: member ? () => member.peers() : undefined,
    origins, batch: turn,
  });
  // Servers on one database: each dashboard and workers list shows the whole network's.
  const peers = member && sliced ? peerViews({
    io, log: log.child({ mod: 'cluster' }), self: () => member.url, everyMs: DEFAULT_DASHBOARD_TIMING.flushMs, workers, running: () => sliced.runningByJob(),
  }) : undefined;
  if (peers) sliced?.countRunningElsewhere((jobId) => peers.runningElsewhere(jobId));
  attachDashboardSocket({ io, jobs, keys, store, events, workers, clock, log: log.child({ mod: 'dashboard' }), peers });
  let openApi: object | null = null;
  app.use(opsRouter({
    draining: () => draining,
    workers: () => scheduler.connectedWorkers,
    probeStore: () => { store.countApiKeys(); },
    scrape: () => metrics.scrape(),
    metricsToken: config.metricsToken,
    openApi: () => (openApi ??= openApiDocument({ version: packageVersion() })),
  }));
  const inferApi = inferRoutes({ keys, router: infer, ratePerMinute: config.inferRatePerMinute, trustProxy: config.trustProxy });
  app.use(inferApi);
  const restApi = restRouter({ config, log: log.child({ mod: 'api' }), store, blobs, keys, models, datasets, jobs, scheduler, workers, serverRuns, peers });
  app.use(restApi);
  app.use(pageRouter({ clientDist: CLIENT_DIST, siteTokens }));
  app.use(express.static(CLIENT_DIST, { index: 'index.html', setHeaders: assetHeaders }));
  app.get('/', (_req, res) => {
    res.status(503).type('text/plain').send('The volunteer page is not built: run `npm run build` (npm install does it).');
  });
  app.use(restErrorHandler(log.child({ mod: 'api' })));

  let sweeper: NodeJS.Timeout | null = null;
  return {
    http: server, io, scheduler, serverRuns, events, workers, jobs, keys, metrics, infer, origins, member: member ?? undefined,
    routes: () => listRoutes(app, [restApi, inferApi]),
    async start() {
      const recovered = scheduler.recoverLeases();
      if (recovered) log.info({ recovered }, 'leases from before the restart returned to the queue');
      serverRuns.resume();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => { server.off('error', reject); resolve(); });
      });
      const port = (server.address() as { port: number }).port;
      void member?.start(config.publicUrl ?? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`);
      sweeper = setInterval(() => {
        try { scheduler.sweep(); } catch (err) { log.error({ err }, 'lease sweep failed'); }
      }, config.sweepMs);
      sweeper.unref();
      retention.start();
      infer.start();
      if (!fs.existsSync(path.join(CLIENT_DIST, 'index.html'))) log.warn('dist/client is missing: run `npm run build` to serve the volunteer page');
      return (server.address() as { port: number }).port;
    },
    async stop() {
      draining ??= 'draining: the server is shutting down';
      retention.stop();
      infer.stop();
      scheduler.drain();
      serverRuns.stop();
      const deadline = Date.now() + config.shutdownGraceMs;
      while (store.allLeased().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (sweeper) clearInterval(sweeper);
      await serverRuns.idle();
      await serverRuns.close();
      await inferAudit.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
      metrics.detach();
      // What is pending is written before this server leaves the others (after that it may no longer commit).
      store.transaction(() => {});
      member?.stop();
      await deps.cluster?.close?.();
      store.close();
      blobs.close();
    },
  };
}
