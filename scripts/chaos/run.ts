/**
 * The chaos run: a real server (a child process, killed with SIGKILL and restarted mid-job) and a swarm
 * of headless volunteers with behaviours, a fifth of them lying. It checks that no wrong output is
 * accepted, no acknowledged result is lost, liars are quarantined, and the job still completes with
 * onnxruntime-node's outputs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../../cli/api-client.js';
import { compareValues } from '../../shared/compare.js';
import { readNpy, writeNpy } from '../../shared/npy.js';
import type { JobView } from '../../shared/protocol.js';
import type { ReplicaRow, VolunteerRow } from '../../server/store/store.js';
import { floatData, mlpModel } from '../../test/helpers/models.js';
import { reference } from '../../test/helpers/workers.js';
import { type Behaviour, ChaosWorker, LYING } from './chaos-worker.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/tabgrid.js');
const API_KEY = 'tg_chaos_run_admin_key_0123456789';

export interface ChaosOptions {
  workers: number;
  /** Fraction of workers that lie (half colluding, half at random). */
  liarFraction: number;
  /** Further workers that collude after three honest answers. */
  sleepers: number;
  tasks: number;
  /** SIGKILLs of the server during the job. */
  kills: number;
  leaseMs: number;
  seed: number;
  timeoutMs: number;
  log: (line: string) => void;
}

export const DEFAULT_CHAOS: ChaosOptions = {
  workers: 20, liarFraction: 0.2, sleepers: 0, tasks: 500, kills: 2, leaseMs: 3000, seed: 7, timeoutMs: 600_000, log: () => {},
};

export interface ChaosReport {
  workers: Record<Behaviour, number>;
  tasks: number;
  completed: boolean;
  kills: number;
  replicasIssued: number;
  replicasPerTask: number;
  wrongSubmitted: number;
  wrongAccepted: number;
  acknowledged: number;
  resultsLost: number;
  liars: number;
  liarsQuarantined: number;
  /** For each quarantined liar, how many results it had sent when it was first refused work. */
  quarantinedAfter: number[];
  honestQuarantined: number;
  durationMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts `tabgrid serve` and resolves once it answers. */
async function startServer(port: number, dataDir: string, leaseMs: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', String(port), '--data', dataDir], {
    env: { ...process.env, TABGRID_API_KEY: API_KEY, TABGRID_LEASE_MS: String(leaseMs), LOG_LEVEL: 'warn' }, stdio: 'ignore',
  });
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/api/v1/health`)).ok) return child;
    } catch { /* not up yet */ }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('the server did not start');
}

export async function runChaos(opts: Partial<ChaosOptions> = {}): Promise<ChaosReport> {
  const o = { ...DEFAULT_CHAOS, ...opts };
  const random = seeded(o.seed);
  const started = Date.now();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-chaos-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let server = await startServer(port, dataDir, o.leaseMs);
  const api = new ApiClient(url, API_KEY);

  const liars = Math.round(o.workers * o.liarFraction);
  const colluders = liars >= 2 ? Math.ceil(liars / 2) : 0;
  const honestKinds: Behaviour[] = ['honest', 'slow', 'dying', 'flaky'];
  const behaviours: Behaviour[] = [
    ...Array.from({ length: colluders }, () => 'colluder' as const),
    ...Array.from({ length: liars - colluders }, () => 'liar' as const),
    ...Array.from({ length: o.sleepers }, () => 'sleeper' as const),
    ...Array.from({ length: o.workers - liars - o.sleepers }, (_, i) => honestKinds[i % honestKinds.length]),
  ];
  const swarm = behaviours.map((b) => new ChaosWorker(url, b, random));
  const workers = Object.fromEntries(Object.keys({ honest: 0, slow: 0, dying: 0, flaky: 0, liar: 0, colluder: 0, sleeper: 0 }).map((k) => [k, behaviours.filter((b) => b === k).length])) as Record<Behaviour, number>;
  o.log(`server on ${url}; ${o.workers} workers: ${Object.entries(workers).map(([k, n]) => `${n} ${k}`).join(', ')}`);

  try {
    const model = mlpModel(4, 16, 3, 11);
    const x = writeNpy('float32', [o.tasks, 4], floatData(o.seed, o.tasks * 4));
    const m = await api.uploadModel(model);
    const ds = await api.uploadDataset(x);
    const created = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 1, replicas: 2, maxReplicas: 8 });
    o.log(`job ${created.id}: ${o.tasks} tasks, ${created.tasks.canaries} known-answer canaries`);
    // Volunteers join in a staggered way, as they would.
    for (const w of swarm) { w.start(); await sleep(20); }

    const killAt = Array.from({ length: o.kills }, (_, i) => (i + 1) / (o.kills + 1));
    let kills = 0;
    let job: JobView | null = null;
    while (Date.now() - started < o.timeoutMs) {
      try { job = await api.getJob(created.id); } catch { await sleep(200); continue; }
      if (job.status !== 'running') break;
      if (kills < killAt.length && job.tasks.done >= killAt[kills] * job.tasks.total) {
        server.kill('SIGKILL');
        await new Promise((r) => server.once('exit', r));
        kills++;
        o.log(`SIGKILL #${kills} at ${job.tasks.done}/${job.tasks.total} tasks done; restarting`);
        await sleep(300);
        server = await startServer(port, dataDir, o.leaseMs);
      }
      await sleep(200);
    }
    const completed = job?.status === 'completed';
    o.log(`job ${job?.status ?? 'unknown'} after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // Wrong outputs accepted: rows of the result that differ from onnxruntime-node's.
    let wrongAccepted = 0;
    if (completed) {
      const got = readNpy(await api.result(created.id, 'y'));
      const want = (await reference(model, { x })).y;
      const g = new Float32Array(got.data.slice().buffer);
      const w = new Float32Array(want.data.slice().buffer);
      const width = got.shape[1];
      for (let i = 0; i < o.tasks; i++) {
        if (compareValues(g.subarray(i * width, (i + 1) * width), w.subarray(i * width, (i + 1) * width), { rtol: 1e-3, atol: 1e-4 })) wrongAccepted++;
      }
    }
    // Results lost: acknowledged as accepted, yet not on record as returned after the crashes.
    const auth = { headers: { authorization: `Bearer ${API_KEY}` } };
    const replicas = ((await (await fetch(`${url}/api/v1/jobs/${created.id}/replicas`, auth)).json()) as { replicas: ReplicaRow[] }).replicas;
    const byId = new Map(replicas.map((r) => [r.id, r]));
    const acked = swarm.flatMap((w) => w.tally.acked);
    const resultsLost = acked.filter((id) => byId.get(id)?.returnedAt == null).length;
    const volunteers = ((await (await fetch(`${url}/api/v1/volunteers`, auth)).json()) as { volunteers: VolunteerRow[] }).volunteers;
    const quarantined = new Set(volunteers.filter((v) => v.quarantinedAt !== null).map((v) => v.id));
    const lying = swarm.filter((w) => LYING.includes(w.behaviour));
    const end = await api.getJob(created.id);
    return {
      workers, tasks: o.tasks, completed, kills,
      replicasIssued: end.replicasIssued,
      replicasPerTask: end.replicasIssued / o.tasks,
      wrongSubmitted: swarm.reduce((n, w) => n + w.tally.wrongSubmitted, 0),
      wrongAccepted,
      acknowledged: acked.length,
      resultsLost,
      liars: lying.length,
      liarsQuarantined: lying.filter((w) => w.tally.volunteerId && quarantined.has(w.tally.volunteerId)).length,
      quarantinedAfter: lying.map((w) => w.tally.quarantinedAfter).filter((n): n is number => n !== null),
      honestQuarantined: swarm.filter((w) => !LYING.includes(w.behaviour) && w.tally.volunteerId && quarantined.has(w.tally.volunteerId)).length,
      durationMs: Date.now() - started,
    };
  } finally {
    await Promise.all(swarm.map((w) => w.stop()));
    server.kill('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The lines the chaos run prints at the end. */
export function formatReport(r: ChaosReport): string {
  return [
    `tasks                      ${r.tasks} (${r.completed ? 'job completed' : 'job NOT completed'})`,
    `server SIGKILLs            ${r.kills}`,
    `replicas issued            ${r.replicasIssued} (${r.replicasPerTask.toFixed(2)} per task)`,
    `wrong results submitted    ${r.wrongSubmitted}`,
    `wrong results accepted     ${r.wrongAccepted}`,
    `results acknowledged       ${r.acknowledged}`,
    `results lost               ${r.resultsLost}`,
    `liars quarantined          ${r.liarsQuarantined} of ${r.liars}, after ${r.quarantinedAfter.length ? r.quarantinedAfter.join(', ') : '-'} results each`,
    `honest volunteers quarantined ${r.honestQuarantined}`,
    `duration                   ${(r.durationMs / 1000).toFixed(1)} s`,
  ].join('\n');
}
