/**
 * The chaos run: a real server (a child process, killed with SIGKILL and restarted mid-job) and a swarm
 * of headless volunteers with behaviours, a fifth of them lying, each on a loopback address of its own (a
 * network origin of its own); and, when asked for, the attackers of the open internet behind one address,
 * 127.0.0.1, with free identities: sleepers, saboteurs and hoarders. It checks that no wrong output is
 * accepted, no acknowledged result is lost, liars are quarantined, and the job still completes with
 * onnxruntime-node's outputs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import readline from 'node:readline';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../../cli/api-client.js';
import { compareValues } from '../../shared/compare.js';
import { readNpy, writeNpy } from '../../shared/npy.js';
import type { JobView } from '../../shared/protocol.js';
import type { ReplicaView, ServerRunsView, VolunteerRecord } from '../../shared/rest-types.js';
import { floatData, mlpModel } from '../../test/helpers/models.js';
import { reference } from '../../test/helpers/workers.js';
import { ATTACKERS, type Behaviour, Behaviour as Behaviours, ChaosWorker, LYING, SABOTAGE_TEXT } from './chaos-worker.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/tabgrid.js');
const API_KEY = 'tg_chaos_run_admin_key_0123456789';

export interface ChaosOptions {
  workers: number;
  /** Fraction of workers that lie (half colluding, half at random). */
  liarFraction: number;
  /** Attackers besides `workers`, all from 127.0.0.1: sleepers collude after `sleeperHonestFor` honest answers. */
  sleepers: number;
  sleeperHonestFor: number;
  /** Attackers that report an error for every task, a fresh identity every two. */
  saboteurs: number;
  /** Attackers that ask for every slot they can, answer nothing, and come back as newcomers when their leases lapse. */
  hoarders: number;
  tasks: number;
  /** SIGKILLs of the server during the job. */
  kills: number;
  leaseMs: number;
  /** Server settings passed through (TABGRID_VET_TENURE_MS, TABGRID_AUDIT_RATE); unset: the server's defaults. */
  vetTenureMs?: number;
  auditRate?: number;
  seed: number;
  timeoutMs: number;
  log: (line: string) => void;
}

export const DEFAULT_CHAOS: ChaosOptions = {
  workers: 20, liarFraction: 0.2, sleepers: 0, sleeperHonestFor: 3, saboteurs: 0, hoarders: 0, tasks: 500, kills: 2, leaseMs: 3000, seed: 7,
  timeoutMs: 600_000, log: () => {},
};

/** What the server's log told (info level), counted across restarts. */
export interface ServerLogCounts {
  /** Tasks sent to the server's own run because errors and lapses reached the failure cap. */
  failureCapTasks: number;
  backups: number;
  leasesLapsed: number;
  auditsRefuted: number;
  quarantined: number;
}

export interface ChaosReport {
  workers: Record<Behaviour, number>;
  tasks: number;
  completed: boolean;
  /** The job's error as the REST view gives it (null when it completed). */
  jobError: string | null;
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
  /** Volunteer identities the attackers used, and how many of those the server quarantined. */
  attackerIdentities: number;
  attackerIdentitiesQuarantined: number;
  /** Sleepers' wrong results sent. */
  sleeperLies: number;
  /** Saboteurs' error reports the server took. */
  errorsReported: number;
  /** Leases handed to hoarders in all, and the most one hoarder identity held at once. */
  leasesHoarded: number;
  mostHeldByOneHoarder: number;
  /** Credit the attackers' identities earned (the honest answers of sleepers before they lie). */
  attackerCredit: number;
  /** Replica errors a researcher reads that still hold a raw control character (must be 0). */
  rawErrorTexts: number;
  /** The server's own runs (GET /api/v1/stats/server-runs), summed over its restarts; busyShare unused. */
  serverRuns: ServerRunsView;
  server: ServerLogCounts;
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

/** Counts what the server's log says of its own runs, backups and lapses (pino JSON lines on stdout). */
class ServerLog {
  readonly counts: ServerLogCounts = { failureCapTasks: 0, backups: 0, leasesLapsed: 0, auditsRefuted: 0, quarantined: 0 };
  private readonly capped = new Set<string>();

  follow(child: ChildProcess): void {
    if (!child.stdout) return;
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      try {
        this.note(JSON.parse(line) as { msg?: string; taskId?: string; backups?: number; lapsed?: number });
      } catch { /* not a log line */ }
    });
  }

  private note(e: { msg?: string; taskId?: string; backups?: number; lapsed?: number }): void {
    const c = this.counts;
    switch (e.msg) {
      case 'task failed on volunteers; the server runs it itself':
        if (e.taskId) this.capped.add(e.taskId);
        break;
      case 'backup replicas issued for leases held past their usual time': c.backups += e.backups ?? 0; break;
      case 'leases expired': c.leasesLapsed += e.lapsed ?? 0; break;
      case 'audit refuted an accepted result': c.auditsRefuted++; break;
      case 'volunteer quarantined': c.quarantined++; break;
    }
    c.failureCapTasks = this.capped.size;
  }
}

/** The server's own-run figures summed over its restarts, each process's from its last sample. */
class ServerRunsTotal {
  private done: ServerRunsView = { canaries: 0, checks: 0, audits: 0, auditsSkipped: 0, stale: 0, failed: 0, busyMs: 0, busyShare: 0 };
  private now: ServerRunsView = { ...this.done };

  constructor(private readonly url: string) {}

  async sample(): Promise<void> {
    try {
      const res = await fetch(`${this.url}/api/v1/stats/server-runs`, { headers: { authorization: `Bearer ${API_KEY}` } });
      if (res.ok) this.now = await res.json() as ServerRunsView;
    } catch { /* down for a restart */ }
  }

  /** The server is about to be killed: what it reported last is kept. */
  restarted(): void {
    this.done = this.total();
    this.now = { canaries: 0, checks: 0, audits: 0, auditsSkipped: 0, stale: 0, failed: 0, busyMs: 0, busyShare: 0 };
  }

  total(): ServerRunsView {
    const t = { ...this.done };
    for (const k of ['canaries', 'checks', 'audits', 'auditsSkipped', 'stale', 'failed', 'busyMs'] as const) t[k] += this.now[k];
    return { ...t, busyShare: 0 };
  }
}

/** Starts `tabgrid serve` and resolves once it answers. */
async function startServer(port: number, dataDir: string, o: ChaosOptions, log: ServerLog): Promise<ChildProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, TABGRID_API_KEY: API_KEY, TABGRID_LEASE_MS: String(o.leaseMs), LOG_LEVEL: 'info' };
  if (o.vetTenureMs !== undefined) env.TABGRID_VET_TENURE_MS = String(o.vetTenureMs);
  if (o.auditRate !== undefined) env.TABGRID_AUDIT_RATE = String(o.auditRate);
  const child = spawn(process.execPath, [BIN, 'serve', '--port', String(port), '--data', dataDir], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  log.follow(child);
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/api/v1/health`)).ok) return child;
    } catch { /* not up yet */ }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('the server did not start');
}

/** Honest volunteers and the liars each leave from a loopback address of their own; attackers all from 127.0.0.1. */
const ownAddress = (i: number) => `127.0.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`;

export async function runChaos(opts: Partial<ChaosOptions> = {}): Promise<ChaosReport> {
  const o = { ...DEFAULT_CHAOS, ...opts };
  const random = seeded(o.seed);
  const started = Date.now();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-chaos-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const serverLog = new ServerLog();
  let server = await startServer(port, dataDir, o, serverLog);
  const api = new ApiClient(url, API_KEY);

  const liars = Math.round(o.workers * o.liarFraction);
  const colluders = liars >= 2 ? Math.ceil(liars / 2) : 0;
  const honestKinds: Behaviour[] = ['honest', 'slow', 'dying', 'flaky'];
  const behaviours: Behaviour[] = [
    ...Array.from({ length: colluders }, () => 'colluder' as const),
    ...Array.from({ length: liars - colluders }, () => 'liar' as const),
    ...Array.from({ length: o.workers - liars }, (_, i) => honestKinds[i % honestKinds.length]),
  ];
  const attackers: Behaviour[] = [
    ...Array.from({ length: o.sleepers }, () => 'sleeper' as const),
    ...Array.from({ length: o.saboteurs }, () => 'saboteur' as const),
    ...Array.from({ length: o.hoarders }, () => 'hoarder' as const),
  ];
  const swarm = [
    ...behaviours.map((behaviour, i) => new ChaosWorker({ url, behaviour, random, localAddress: ownAddress(i) })),
    ...attackers.map((behaviour) => new ChaosWorker({ url, behaviour, random, localAddress: '127.0.0.1', honestFor: o.sleeperHonestFor })),
  ];
  const all = [...behaviours, ...attackers];
  const workers = Object.fromEntries(Object.keys(Behaviours).map((k) => [k, all.filter((b) => b === k).length])) as Record<Behaviour, number>;
  o.log(`server on ${url}; ${o.workers} workers on addresses of their own, ${attackers.length} attackers on 127.0.0.1: ${
    Object.entries(workers).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ')}`);

  try {
    const model = mlpModel(4, 16, 3, 11);
    const x = writeNpy('float32', [o.tasks, 4], floatData(o.seed, o.tasks * 4));
    const m = await api.uploadModel(model);
    const ds = await api.uploadDataset(x);
    const created = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 1, replicas: 2, maxReplicas: 8 });
    o.log(`job ${created.id}: ${o.tasks} tasks, ${created.tasks.canaries} known-answer canaries`);
    // Volunteers join in a staggered way, as they would; attackers with them.
    for (const w of swarm) { w.start(); await sleep(20); }

    const killAt = Array.from({ length: o.kills }, (_, i) => (i + 1) / (o.kills + 1));
    let kills = 0;
    let job: JobView | null = null;
    // The server counts its own runs since it started: the last sample before each kill is added up.
    const runs = new ServerRunsTotal(url);
    while (Date.now() - started < o.timeoutMs) {
      try { job = await api.getJob(created.id); } catch { await sleep(200); continue; }
      await runs.sample();
      if (job.status !== 'running') break;
      if (kills < killAt.length && job.tasks.done >= killAt[kills] * job.tasks.total) {
        runs.restarted();
        server.kill('SIGKILL');
        await new Promise((r) => server.once('exit', r));
        kills++;
        o.log(`SIGKILL #${kills} at ${job.tasks.done}/${job.tasks.total} tasks done; restarting`);
        await sleep(300);
        server = await startServer(port, dataDir, o, serverLog);
      }
      // While a kill is due, look often: a small job on a quick server can go from under its mark to done in 200 ms.
      await sleep(kills < killAt.length ? 20 : 200);
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
    const replicas = ((await (await fetch(`${url}/api/v1/jobs/${created.id}/replicas`, auth)).json()) as { replicas: ReplicaView[] }).replicas;
    const byId = new Map(replicas.map((r) => [r.id, r]));
    const acked = swarm.flatMap((w) => w.tally.acked);
    const resultsLost = acked.filter((id) => byId.get(id)?.returnedAt == null).length;
    const volunteers = ((await (await fetch(`${url}/api/v1/volunteers`, auth)).json()) as { volunteers: VolunteerRecord[] }).volunteers;
    const quarantined = new Set(volunteers.filter((v) => v.quarantinedAt !== null).map((v) => v.id));
    const creditOf = new Map(volunteers.map((v) => [v.id, v.credit]));
    const isQuarantined = (w: ChaosWorker) => w.tally.volunteerIds.some((id) => quarantined.has(id));
    const lying = swarm.filter((w) => LYING.includes(w.behaviour) && !ATTACKERS.includes(w.behaviour));
    const attacking = swarm.filter((w) => ATTACKERS.includes(w.behaviour));
    const attackerIds = attacking.flatMap((w) => w.tally.volunteerIds);
    const end = await api.getJob(created.id);
    await runs.sample();
    return {
      workers, tasks: o.tasks, completed, jobError: end.error, kills,
      replicasIssued: end.replicasIssued,
      replicasPerTask: end.replicasIssued / o.tasks,
      wrongSubmitted: swarm.reduce((n, w) => n + w.tally.wrongSubmitted, 0),
      wrongAccepted,
      acknowledged: acked.length,
      resultsLost,
      liars: lying.length,
      liarsQuarantined: lying.filter(isQuarantined).length,
      quarantinedAfter: lying.map((w) => w.tally.quarantinedAfter).filter((n): n is number => n !== null),
      honestQuarantined: swarm.filter((w) => !LYING.includes(w.behaviour) && !ATTACKERS.includes(w.behaviour) && isQuarantined(w)).length,
      attackerIdentities: attackerIds.length,
      attackerIdentitiesQuarantined: attackerIds.filter((id) => quarantined.has(id)).length,
      sleeperLies: attacking.filter((w) => w.behaviour === 'sleeper').reduce((n, w) => n + w.tally.wrongSubmitted, 0),
      errorsReported: attacking.reduce((n, w) => n + w.tally.errorsReported, 0),
      leasesHoarded: attacking.reduce((n, w) => n + w.tally.leasesTaken, 0),
      mostHeldByOneHoarder: Math.max(0, ...attacking.map((w) => w.tally.mostHeld)),
      attackerCredit: attackerIds.reduce((n, id) => n + (creditOf.get(id) ?? 0), 0),
      rawErrorTexts: [end.error, ...replicas.map((r) => r.error)].filter((e) => e !== null && (/[\u0000-\u001f\u202e]/.test(e) || e.includes(SABOTAGE_TEXT))).length,
      serverRuns: runs.total(),
      server: { ...serverLog.counts },
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
  const attackers = r.workers.sleeper + r.workers.saboteur + r.workers.hoarder;
  const lines = [
    `tasks                      ${r.tasks} (${r.completed ? 'job completed' : `job NOT completed${r.jobError ? `: ${r.jobError}` : ''}`})`,
    `server SIGKILLs            ${r.kills}`,
    `replicas issued            ${r.replicasIssued} (${r.replicasPerTask.toFixed(2)} per task)`,
    `wrong results submitted    ${r.wrongSubmitted}`,
    `wrong results accepted     ${r.wrongAccepted}`,
    `results acknowledged       ${r.acknowledged}`,
    `results lost               ${r.resultsLost}`,
    `liars quarantined          ${r.liarsQuarantined} of ${r.liars}, after ${r.quarantinedAfter.length ? r.quarantinedAfter.join(', ') : '-'} results each`,
    `honest volunteers quarantined ${r.honestQuarantined}`,
  ];
  if (attackers > 0) {
    lines.push(
      `attackers (127.0.0.1)      ${r.workers.sleeper} sleepers, ${r.workers.saboteur} saboteurs, ${r.workers.hoarder} hoarders; ${r.attackerIdentities} identities, ${r.attackerIdentitiesQuarantined} quarantined`,
      `  sleepers' wrong results  ${r.sleeperLies}`,
      `  saboteurs' errors        ${r.errorsReported} reported; raw control characters shown to researchers: ${r.rawErrorTexts}`,
      `  hoarders' leases         ${r.leasesHoarded} taken, at most ${r.mostHeldByOneHoarder} held by one identity`,
      `  attackers' credit        ${r.attackerCredit}`,
    );
  }
  const s = r.server;
  const sr = r.serverRuns;
  lines.push(
    `server's own runs          ${sr.checks} checks, ${sr.audits} audits (${sr.auditsSkipped} skipped), ${sr.canaries} known answers, ${sr.stale} passed over (settled while queued); busy ${(sr.busyMs / 1000).toFixed(2)} s of one core (${(100 * sr.busyMs / r.durationMs).toFixed(1)}% of the run)`,
    `  from its log             ${s.failureCapTasks} tasks at the failure cap, ${s.auditsRefuted} audits refuted, ${s.quarantined} volunteers quarantined`,
    `leases (log)               ${s.leasesLapsed} lapsed, ${s.backups} backup replicas issued`,
    `duration                   ${(r.durationMs / 1000).toFixed(1)} s`,
  );
  return lines.join('\n');
}
