/**
 * Read-only views for operators and researchers (volunteers' standing, agreement between worker classes,
 * a job's replicas, workers online) and the public leaderboard.
 */
import express from 'express';
import { AppError } from '../../shared/errors.js';
import type { JobService } from '../jobs/job-service.js';
import type { Store } from '../store/store.js';
import type { WorkerInfo } from './worker-socket.js';
import type { Authed } from './rest.js';

export interface OperatorDeps {
  store: Store;
  jobs: JobService;
  workers: Map<string, WorkerInfo>;
  auth: express.RequestHandler;
}

/** A name to show in public: the chosen display name, else a short anonymous label. */
const publicName = (v: { id: string; name: string | null }) => v.name || `volunteer ${v.id.slice(-4)}`;

export function operatorRouter(deps: OperatorDeps): express.Router {
  const { store, jobs, auth } = deps;
  const r = express.Router();
  const admin = (req: Authed) => {
    if (!req.apiKey?.admin) throw new AppError('UNAUTHORIZED', 'this view needs an admin key');
  };

  r.get('/api/v1/volunteers', auth, (req: Authed, res) => {
    admin(req);
    res.json({ volunteers: store.listVolunteers() });
  });

  r.get('/api/v1/stats/classes', auth, (_req, res) => {
    res.json({
      classes: store.classPairs().map((p) => ({ ...p, agreement: p.agree + p.disagree ? p.agree / (p.agree + p.disagree) : null })),
    });
  });

  r.get('/api/v1/jobs/:id/replicas', auth, (req: Authed, res) => {
    const job = jobs.get(String(req.params.id), req.apiKey!.id, req.apiKey!.admin);
    res.json({ replicas: store.replicasOfJob(job.id) });
  });

  r.get('/api/v1/workers', auth, (_req, res) => {
    res.json({ workers: [...deps.workers.values()] });
  });

  r.get('/api/v1/leaderboard', (req, res) => {
    const limit = Math.min(100, Math.max(1, Number(req.query.limit) || 20));
    res.json({
      volunteers: store.topVolunteers(limit).map((v) => ({ name: publicName(v), team: v.team, credit: v.credit, tasks: v.valid })),
      teams: store.topTeams(limit),
      sites: store.topSites(limit).map((s) => ({ origin: s.origin, credit: s.credit, tasks: s.tasks })),
    });
  });

  return r;
}
