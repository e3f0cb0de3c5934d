/**
 * The attacks of issue 9 ("Trust on the open internet"), each through the real server, real sockets and real
 * headless workers: identities are free, so attackers here hold several from one machine. Honest workers leave
 * from loopback addresses of their own (127.0.0.2, 127.0.0.3: distinct network origins); attackers from
 * 127.0.0.1 unless a test says otherwise. Each test waits on conditions (the REST job view, the attackers'
 * tallies) with a deadline, never on a fixed sleep.
 */
import { type Socket, io } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import type { Config } from '../../server/config.js';
import { compareValues } from '../../shared/compare.js';
import { readNpy, writeNpy } from '../../shared/npy.js';
import type { AckResponse, CreateJobRequest, JobView, TaskAssignment } from '../../shared/protocol.js';
import type { ReplicaView, VolunteerRecord } from '../../shared/rest-types.js';
import { ChaosWorker, type ChaosWorkerOptions, SABOTAGE_TEXT } from '../../scripts/chaos/chaos-worker.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { loopbacks, reference, startWorkers } from '../helpers/workers.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c(); });

/** Polls `probe` until it returns something other than undefined or false; fails with `what` at the deadline. */
async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 40_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== undefined && got !== false) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Setup { server: TestServer; api: ApiClient; job: JobView; model: Uint8Array; x: Uint8Array }

/** A server with `config`, and a job of `items` rows of x through a small MLP, submitted with `job` options. */
async function setup(config: Partial<Config>, items: number, job: Omit<CreateJobRequest, 'model' | 'inputs'>): Promise<Setup> {
  const server = await startTestServer({ config });
  cleanup.push(() => server.close());
  const api = new ApiClient(server.url, server.apiKey);
  const model = mlpModel(4, 16, 3, 9);
  const x = writeNpy('float32', [items, 4], floatData(17, items * 4));
  const m = await api.uploadModel(model);
  const created = await api.createJob({ model: m.hash, inputs: { x: (await api.uploadDataset(x)).hash }, ...job });
  return { server, api, job: created, model, x };
}

/** Headless honest workers, each from a loopback address of its own. */
function honest(s: Setup, n: number): void {
  const w = startWorkers(s.server.url, n, 2, { bind: loopbacks });
  cleanup.push(() => w.stop());
}

/** Attackers from the chaos run, started now. */
function attackers(s: Setup, n: number, o: Omit<ChaosWorkerOptions, 'url' | 'random'>): ChaosWorker[] {
  const random = () => 0.5;
  const ws = Array.from({ length: n }, () => new ChaosWorker({ url: s.server.url, random, ...o }));
  for (const w of ws) { w.start(); cleanup.push(() => w.stop()); }
  return ws;
}

/** The job once it has ended; at the deadline, fails with where it stood. */
async function ended(s: Setup, timeoutMs?: number): Promise<JobView> {
  let last: JobView | null = null;
  try {
    return await until('the job to end', async () => {
      last = await s.api.getJob(s.job.id);
      return last.status !== 'running' && last;
    }, timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}; it stood at ${JSON.stringify(last)}`);
  }
}

/** Rows of the job's output that differ from onnxruntime-node's. */
async function wrongRows(s: Setup): Promise<number> {
  const got = readNpy(await s.api.result(s.job.id, 'y'));
  const want = (await reference(s.model, { x: s.x })).y;
  const g = new Float32Array(got.data.slice().buffer);
  const w = new Float32Array(want.data.slice().buffer);
  const width = got.shape[1]!;
  let wrong = 0;
  for (let i = 0; i < got.shape[0]!; i++) {
    if (compareValues(g.subarray(i * width, (i + 1) * width), w.subarray(i * width, (i + 1) * width), { rtol: 1e-3, atol: 1e-4 })) wrong++;
  }
  return wrong;
}

async function admin<T>(s: Setup, route: string): Promise<T> {
  const res = await fetch(`${s.server.url}${route}`, { headers: { authorization: `Bearer ${s.server.apiKey}` } });
  return res.json() as Promise<T>;
}
const volunteers = async (s: Setup) => (await admin<{ volunteers: VolunteerRecord[] }>(s, '/api/v1/volunteers')).volunteers;
const replicas = async (s: Setup) => (await admin<{ replicas: ReplicaView[] }>(s, `/api/v1/jobs/${s.job.id}/replicas`)).replicas;

describe('trust on the open internet', () => {
  it('a default job with 4 sleepers behind one address and 2 honest workers completes with onnxruntime-node\'s outputs', async () => {
    // The run: 224 items, batch 2, the job's defaults; the sleepers answer 3 tasks honestly, then all the same wrong answer.
    const s = await setup({}, 224, { batchSize: 2 });
    const sleepers = attackers(s, 4, { behaviour: 'sleeper', honestFor: 3, localAddress: '127.0.0.1' });
    honest(s, 2);
    const job = await ended(s);
    expect(job.status).toBe('completed');
    expect(sleepers.reduce((n, w) => n + w.tally.wrongSubmitted, 0)).toBeGreaterThan(0);
    expect(await wrongRows(s)).toBe(0);
  });

  it('sleepers vetted first still cannot outvote anyone from one address', async () => {
    // Vetting takes no tenure here and canaries are plenty, and the sleepers lie only once two of them are vetted:
    // what stops them then is that their agreement comes from one network origin.
    const s = await setup({ vetTenureMs: 0, auditRate: 0 }, 200, { batchSize: 1, canaryRate: 0.1 });
    const sleepers = attackers(s, 4, { behaviour: 'sleeper', honestFor: Infinity, localAddress: '127.0.0.1' });
    honest(s, 2);
    const isVetted = (v: VolunteerRecord) => v.canaryPassed >= 2 && v.valid >= 5 && v.canaryFailed === 0 && v.quarantinedAt === null;
    await until('two sleepers to be vetted', async () => {
      const records = await volunteers(s);
      return sleepers.filter((w) => records.some((v) => v.id === w.volunteerId && isVetted(v))).length >= 2;
    });
    for (const w of sleepers) w.wake();
    const job = await ended(s);
    expect(job.status).toBe('completed');
    expect(sleepers.reduce((n, w) => n + w.tally.wrongSubmitted, 0)).toBeGreaterThan(0);
    expect(await wrongRows(s)).toBe(0);
  });

  it('two fresh identities that pass a known answer and then send zeros get nothing accepted and no credit for it', async () => {
    // On two addresses: agreement across origins is not enough, a vetted volunteer must stand behind it.
    const s = await setup({}, 10, { batchSize: 1 });
    await until('the known answers to be computed', async () => (await s.api.getJob(s.job.id)).tasks.done >= s.job.tasks.canaries);
    const zeroers = [
      ...attackers(s, 1, { behaviour: 'sleeper', honestFor: 1, lie: 'zeros', localAddress: '127.0.0.8' }),
      ...attackers(s, 1, { behaviour: 'sleeper', honestFor: 1, lie: 'zeros', localAddress: '127.0.0.9' }),
    ];
    await until('each zeroer to send zeros', () => zeroers.every((w) => w.tally.wrongSubmitted >= 1));
    honest(s, 2);
    const job = await ended(s);
    expect(job.status).toBe('completed');
    expect(await wrongRows(s)).toBe(0);
    // Credit for the one honest answer (one item) at most, never for zeros; on the public leaderboard too.
    const records = await volunteers(s);
    const board = await (await fetch(`${s.server.url}/api/v1/leaderboard?limit=100`)).json() as { volunteers: { name: string; credit: number }[] };
    for (const w of zeroers) {
      const v = records.find((r) => r.id === w.volunteerId)!;
      expect(v.valid).toBeLessThanOrEqual(1);
      expect(v.credit).toBeLessThanOrEqual(1);
      for (const e of board.volunteers.filter((b) => b.name === `volunteer ${w.volunteerId!.slice(-4)}`)) expect(e.credit).toBeLessThanOrEqual(1);
    }
  });

  it('five fresh identities reporting an error for every task cannot fail a job, nor put their text in front of the researcher', async () => {
    const s = await setup({}, 10, { batchSize: 1 });
    const saboteurs = attackers(s, 5, { behaviour: 'saboteur', errorsPerIdentity: Infinity, localAddress: '127.0.0.1' });
    // Enough errors that every task could have reached the failure cap (5) on the saboteurs' word alone.
    await until('the saboteurs to report errors', () => saboteurs.reduce((n, w) => n + w.tally.errorsReported, 0) >= 20);
    honest(s, 2);
    const job = await ended(s);
    expect(job.status).toBe('completed');
    expect(job.error).toBeNull();
    expect(await wrongRows(s)).toBe(0);
    // What a researcher reads of the errors (the replicas view) is escaped: no escape sequence or bidi override acts.
    const reported = (await replicas(s)).filter((r) => r.error?.includes('CUDA error'));
    expect(reported.length).toBeGreaterThan(0);
    for (const r of reported) {
      expect(r.error).not.toMatch(/[\u0000-\u001f\u202e]/);
      expect(r.error).not.toContain(SABOTAGE_TEXT);
    }
  });

  it('one socket asking for 8 slots again and again holds no more than a newcomer may, and what it holds is done by others', async () => {
    // Leases far longer than the test: the hoarder's tasks can only be finished by backup replicas, not by a lapse.
    const s = await setup({ leaseMs: 60_000, vetTenureMs: 0 }, 20, { batchSize: 1, canaryRate: 0.2 });
    const hoarder: Socket = io(s.server.url, { transports: ['websocket'], forceNew: true, reconnection: false, localAddress: '127.0.0.1' } as object);
    cleanup.push(() => hoarder.disconnect());
    const held = new Set<string>();
    hoarder.on('task:assign', (tasks: TaskAssignment[]) => { for (const t of tasks) held.add(t.replicaId); });
    hoarder.on('task:cancel', (ids: string[]) => { for (const id of ids) held.delete(id); });
    await new Promise<void>((r) => hoarder.once('connect', () => r()));
    const hello = await hoarder.emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] }) as AckResponse<{ volunteerId: string }>;
    if (!hello.ok) throw new Error(hello.error.message);
    let most = 0;
    for (let i = 0; i < 10; i++) {
      const res = await hoarder.emitWithAck('work:request', { slots: 8 }) as AckResponse<{ tasks: TaskAssignment[] }>;
      if (res.ok) for (const t of res.tasks) held.add(t.replicaId);
      most = Math.max(most, held.size);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(2); // the server's newcomerLeases
    const leased = (await replicas(s)).filter((r) => r.volunteerId === hello.volunteerId && r.status === 'leased');
    expect(leased.length).toBeLessThanOrEqual(2);

    honest(s, 2);
    const job = await ended(s, 45_000); // before the hoarder's leases lapse
    expect(job.status).toBe('completed');
    expect(await wrongRows(s)).toBe(0);
    // It never answered; its lease of a task the job needed was withdrawn once a backup's answer settled that task
    // (a lease of a known-answer probe, which nothing waits for, may still be out).
    const mine = (await replicas(s)).filter((r) => r.volunteerId === hello.volunteerId);
    expect(mine.every((r) => r.returnedAt === null)).toBe(true);
    expect(mine.filter((r) => r.status === 'cancelled').length).toBeGreaterThan(0);
  });
});
