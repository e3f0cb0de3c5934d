/**
 * Read-only views: for admin keys, volunteers' standing, agreement between worker classes and the workers
 * online; for a job's owner, its replicas (who ran them only as labels, unless the key is an admin's); for
 * everyone, the public leaderboard.
 */
import express from 'express';
import { z } from 'zod';
import type { ClassAgreement } from '../../shared/dashboard-protocol.js';
import type { ReplicaView, ServerRunsView, VolunteerRecord } from '../../shared/rest-types.js';
import type { JobService } from '../jobs/job-service.js';
import type { ReplicaRow, Store } from '../store/store.js';
import { keyOf, requireAdmin } from './rest-auth.js';
import { type PeerViews, networkWorkers } from './peer-views.js';
import type { WorkerInfo } from './worker-socket.js';

export interface OperatorDeps {
  store: Store;
  jobs: JobService;
  workers: Map<string, WorkerInfo>;
  auth: express.RequestHandler;
  serverRuns: ServerRunFigures;
  /** The other servers on the same database, whose workers the list includes. */
  peers?: PeerViews;
}

/** What the server's own runs report (server/verify/server-runs.ts). */
export interface ServerRunFigures {
  readonly stats: Omit<ServerRunsView, 'busyShare'>;
  busyShare(): number;
}

/** A name to show in public: the chosen display name, else a short anonymous label. */
const publicName = (v: { id: string; name: string | null }) => v.name || `volunteer ${v.id.slice(-4)}`;

/** A job's replicas; volunteers named `volunteer 1, 2, ...` in order of first appearance, ids only for admins. */
export function replicaViews(rows: ReplicaRow[], admin: boolean): ReplicaView[] {
  const labels = new Map<string, string>();
  return rows.map((r) => {
    let volunteer = labels.get(r.volunteerId);
    if (!volunteer) labels.set(r.volunteerId, (volunteer = `volunteer ${labels.size + 1}`));
    const view: ReplicaView = {
      id: r.id, taskId: r.taskId, status: r.status, volunteer, workerClass: r.workerClass, single: r.single,
      backend: r.backend, runMs: r.runMs, error: r.error, leasedAt: r.leasedAt, leaseExpires: r.leaseExpires, returnedAt: r.returnedAt,
    };
    return admin ? { ...view, volunteerId: r.volunteerId, workerId: r.workerId, origin: r.origin, site: r.site } : view;
  });
}

/** `?limit=` clamped to 1..100; absent or not a number, 20. */
const leaderboardLimit = z.coerce.number().int().catch(20).transform((n) => Math.min(100, Math.max(1, n)));

export function operatorRouter(deps: OperatorDeps): express.Router {
  const { store, jobs, auth } = deps;
  const r = express.Router();

  r.get('/api/v1/volunteers', auth, (req, res) => {
    requireAdmin(req, 'the volunteers list');
    const volunteers: VolunteerRecord[] = store.listVolunteers().map((v) => ({
      id: v.id, name: v.name, team: v.team, valid: v.valid, invalid: v.invalid, errors: v.errors, streak: v.streak,
      canaryPassed: v.canaryPassed, canaryFailed: v.canaryFailed, credit: v.credit, quarantinedAt: v.quarantinedAt, createdAt: v.createdAt,
    }));
    res.json({ volunteers });
  });

  r.get('/api/v1/stats/server-runs', auth, (req, res) => {
    requireAdmin(req, 'the server\'s own runs');
    const view: ServerRunsView = { ...deps.serverRuns.stats, busyShare: deps.serverRuns.busyShare() };
    res.json(view);
  });

  r.get('/api/v1/stats/classes', auth, (req, res) => {
    requireAdmin(req, 'agreement between worker classes');
    const classes: ClassAgreement[] = store.classPairs()
      .map((p) => ({ a: p.a, b: p.b, agree: p.agree, disagree: p.disagree, agreement: p.agree + p.disagree ? p.agree / (p.agree + p.disagree) : null }));
    res.json({ classes });
  });

  r.get('/api/v1/jobs/:id/replicas', auth, (req, res) => {
    const key = keyOf(req);
    const job = jobs.get(String(req.params.id), key.id, key.admin);
    res.json({ replicas: replicaViews(store.replicasOfJob(job.id), key.admin) });
  });

  r.get('/api/v1/workers', auth, async (req, res) => {
    requireAdmin(req, 'the workers list');
    res.json({ workers: await networkWorkers(deps.workers, deps.peers) });
  });

  r.get('/api/v1/leaderboard', (req, res) => {
    const limit = leaderboardLimit.parse(req.query.limit);
    res.json({
      volunteers: store.topVolunteers(limit).map((v) => ({ name: publicName(v), team: v.team, credit: v.credit, tasks: v.valid })),
      teams: store.topTeams(limit),
      sites: store.topSites(limit).map((s) => ({ origin: s.origin, credit: s.credit, tasks: s.tasks })),
    });
  });

  return r;
}
