/**
 * Scale-out: several `tabgrid serve` processes on one PostgreSQL database (docs/scale-out.md). What each committed
 * result costs the servers and the database, the dispatch ratio of one server on PostgreSQL, the capacity those
 * costs give N servers on N machines, and how long a SIGKILLed server's work and workers take to move.
 *
 *   npm run bench:scale-out -- [--clients 50] [--seconds 5] [--servers 3] [--db-cores 4]
 *
 * Phases, each in fresh child processes, on one throwaway PostgreSQL 15 cluster (test/helpers/pg-cluster.ts):
 *   bare A/B   bare socket.io request/ack round trips (as bench/dispatch.ts): the limit
 *   N = 1..    N servers on a fresh database, the fake workers split evenly over them (one load child each), a job
 *              stream fed on server 0 (Identity model, replicas 1, 1 KiB a task, as dispatch's r1); one window:
 *              results/s, server CPU and database CPU per committed result
 *   failover   2 servers (time to live 2 s), real headless workers on each (those of server 1 also given server
 *              0's URL), server 1 SIGKILLed: until its slices are claimed by server 0, until its workers finish a
 *              task again
 * On a machine of few cores the N servers share them, so the rate measured for N > 1 need not rise: the CPU
 * per result is the figure, and the capacity estimate puts each server on a machine of its own.
 */
import pg from 'pg';
import path from 'node:path';
import { NodeRunner } from '../cli/node-runner.js';
import { WorkLoop } from '../client/net/work-loop.js';
import { writeNpy } from '../shared/npy.js';
import { floatData, mlpModel } from '../test/helpers/models.js';
import { type PgCluster, havePostgres, startPgCluster } from '../test/helpers/pg-cluster.js';
import { loopbacks } from '../test/helpers/workers.js';
import { floatNpy, identityModel } from './lib/models.js';
import { PgCpu, type PgCpuWindow } from './lib/pg-cpu.js';
import { BENCH, Child, CpuWindow, sleep } from './lib/proc.js';
import { fmt, machineLine, numericFlags, result, say } from './lib/report.js';
import { type BenchServer, JobFeeder, startServer, upload } from './lib/tabgrid.js';

const { n: opt } = numericFlags('npm run bench:scale-out --', {
  clients: { default: 50, min: 1, max: 2000, help: 'fake workers in all, split evenly over the servers' },
  inflight: { default: 2, min: 1, max: 16, help: 'messages in flight per client; the fake workers\' slots' },
  bytes: { default: 1024, min: 4, max: 1 << 20, help: 'binary bytes per message (bare) and per task input and output (TabGrid)' },
  warmup: { default: 2, min: 0, max: 60, help: 'seconds of load before each measured window' },
  seconds: { default: 5, min: 1, max: 120, help: 'seconds measured per window' },
  servers: { default: 3, min: 1, max: 8, help: 'the largest N: phases for 1..N servers' },
  items: { default: 20_000, min: 100, max: 200_000, help: 'tasks per job (the feeder adds jobs as they drain)' },
  'canary-rate': { default: 0.02, min: 0, max: 0.5, help: 'known-answer share of tasks (0.02 is the product default)' },
  'db-cores': { default: 4, min: 1, max: 256, help: 'cores of the database\'s own machine, for the capacity estimate' },
  'failover-workers': { default: 2, min: 1, max: 16, help: 'headless workers on each of the two servers in the failover phase' },
  'failover-timeout': { default: 30, min: 5, max: 300, help: 'seconds to wait after the SIGKILL for slices and workers to move' },
});

const LIB = path.join(BENCH, 'lib');
const TTL_MS = 2000;
const CLUSTER_TTL = 'TABGRID_CLUSTER_TTL_MS';

type Mark = { type: string; count: number; t: number; errors?: string[] };

/** `pg` client on `url`; the bench's own connections are left out of the database's CPU. */
async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

async function transactions(c: pg.Client, db: string): Promise<number> {
  await c.query('SELECT pg_stat_clear_snapshot()');
  const r = await c.query<{ n: string }>('SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = $1', [db]);
  return Number(r.rows[0]?.n ?? NaN);
}

interface Phase {
  servers: number; rate: number; count: number; seconds: number;
  /** Results/s committed through each server (its own fake workers'). */
  perServer: number[];
  serverCores: number[]; loadCores: number; otherCores: number; db: PgCpuWindow; xactsPerResult: number;
  failed: number;
}

const usPer = (cores: number, rate: number) => (cores * 1e6) / rate;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

async function bare(label: string): Promise<{ rate: number; serverCores: number }> {
  const server = new Child(path.join(LIB, 'bare-server.ts'), [], { label: 'bare-server' });
  const { port } = await server.next<{ type: string; port: number }>('ready');
  const load = new Child(path.join(LIB, 'bare-clients.ts'), [], { label: 'bare-clients' });
  try {
    await load.ask({ type: 'start', url: `http://127.0.0.1:${port}`, clients: opt.clients, inflight: opt.inflight, bytes: opt.bytes });
    await sleep(opt.warmup * 1000);
    const a = await load.ask<Mark>({ type: 'mark' });
    const cpu = new CpuWindow([server.pid, load.pid]);
    await sleep(opt.seconds * 1000);
    const b = await load.ask<Mark>({ type: 'mark' });
    const [serverCores, loadCores] = cpu.cores();
    const rate = (b.count - a.count) / ((b.t - a.t) / 1000);
    say(`${label.padEnd(10)} ${fmt.rate(rate).padStart(8)} round trips/s   cpu: server ${serverCores.toFixed(2)}, load ${loadCores.toFixed(2)}, others ${cpu.others().toFixed(2)} cores`);
    await load.ask({ type: 'stop' });
    return { rate, serverCores };
  } finally {
    await load.stop();
    await server.stop();
  }
}

/** N servers on a fresh database, the fake workers split over them, one measured window. */
async function servers(cluster: PgCluster, monitor: pg.Client, cpuOf: PgCpu, n: number): Promise<Phase> {
  const dbName = `scale_n${n}`;
  const url = cluster.createDatabase(dbName);
  const list: BenchServer[] = [];
  const loads: Child[] = [];
  let feeder: JobFeeder | undefined;
  try {
    // One at a time: the first applies the schema's migrations.
    for (let i = 0; i < n; i++) list.push(await startServer({ env: { TABGRID_STORE: url } }));
    const api = list[0]!.api;
    const width = Math.max(1, Math.floor(opt.bytes / 4));
    const ids = await upload(api, identityModel(width), { x: floatNpy(opt.items, width) });
    for (let i = 0; i < n; i++) {
      const clients = Math.floor(opt.clients / n) + (i < opt.clients % n ? 1 : 0);
      const load = new Child(path.join(LIB, 'fake-workers.ts'), [], { label: `fake-workers-${i}` });
      loads.push(load);
      await load.ask({ type: 'start', url: list[i]!.url, clients, slots: opt.inflight, output: 'y' });
    }
    const counted = async () => sum((await Promise.all(loads.map((l) => l.ask<Mark>({ type: 'mark' })))).map((m) => m.count));
    feeder = new JobFeeder(api, {
      model: ids.model, inputs: ids.inputs, items: opt.items, batchSize: 1, replicas: 1, adaptive: false, canaryRate: opt['canary-rate'], name: `scale-out n${n}`,
    }, Math.min(opt.items / 2, 5000), counted);
    await feeder.start();
    await sleep(opt.warmup * 1000);
    const a = await Promise.all(loads.map((l) => l.ask<Mark>({ type: 'mark' })));
    const x0 = await transactions(monitor, dbName);
    const cpu = new CpuWindow([...list.map((s) => s.child.pid), ...loads.map((l) => l.pid)]);
    const db = cpuOf.window();
    await sleep(opt.seconds * 1000);
    const b = await Promise.all(loads.map((l) => l.ask<Mark>({ type: 'mark' })));
    const dbw = db.end();
    const cores = cpu.cores();
    const otherCores = Math.max(0, cpu.others() - dbw.cores);
    const x1 = await transactions(monitor, dbName);
    for (const m of b) if (m.errors?.length) say(`  load reported: ${m.errors.join(' | ')}`);
    const count = sum(b.map((m, i) => m.count - a[i]!.count));
    const seconds = sum(b.map((m, i) => m.t - a[i]!.t)) / b.length / 1000;
    const rate = count / seconds;
    const { failed } = await feeder.progress();
    const phase: Phase = {
      servers: n, rate, count, seconds, perServer: b.map((m, i) => (m.count - a[i]!.count) / seconds),
      serverCores: cores.slice(0, n), loadCores: sum(cores.slice(n)), otherCores, db: dbw,
      xactsPerResult: (x1 - x0) / count, failed,
    };
    const serverCores = sum(phase.serverCores);
    say(`N = ${n}      ${fmt.rate(rate).padStart(8)} results committed/s   server CPU ${usPer(serverCores, rate).toFixed(0)} µs/result, `
      + `database CPU ${usPer(dbw.cores, rate).toFixed(0)} µs/result (backends ${usPer(dbw.backendCores, rate).toFixed(0)}), `
      + `${phase.xactsPerResult.toFixed(2)} transactions/result${failed ? `, ${failed} tasks FAILED` : ''}`);
    if (n > 1) say(`           results/s through each server: ${phase.perServer.map((r) => fmt.rate(r)).join(' + ')}`);
    say(`           cores: servers ${phase.serverCores.map((c) => c.toFixed(2)).join(' + ')}, database ${dbw.cores.toFixed(2)} `
      + `(backends ${dbw.backendCores.toFixed(2)}, background ${dbw.backgroundCores.toFixed(2)}, exited ${dbw.exitedCores.toFixed(2)}; ${dbw.processes} processes), `
      + `load ${phase.loadCores.toFixed(2)}, others ${otherCores.toFixed(2)}`);
    return phase;
  } finally {
    feeder?.stop();
    for (const l of loads) await l.ask({ type: 'stop' }).catch(() => {});
    for (const l of loads) await l.stop();
    await feeder?.cancelAll();
    for (const s of list.reverse()) await s.stop();
  }
}

interface Failover {
  heldSlices: number; freedMs: number | null; firstClaimMs: number | null; allClaimedMs: number | null; claimed: number;
  switchMs: (number | null)[]; workerBackMs: (number | null)[]; ratePerSecondBefore: number;
}

/** Two servers, real workers on each; server 1 SIGKILLed: how long until its slices and its workers move. */
async function failover(cluster: PgCluster): Promise<Failover> {
  const url = cluster.createDatabase('scale_failover');
  const env = { TABGRID_STORE: url, [CLUSTER_TTL]: String(TTL_MS) };
  const s0 = await startServer({ env });
  const s1 = await startServer({ env });
  const sql = await connect(url);
  const k = opt['failover-workers'];
  const runners = Array.from({ length: 2 * k }, () => new NodeRunner());
  const switched: (number | null)[] = Array.from({ length: k }, () => null);
  let killedAt = 0;
  const loops = runners.map((runner, i) => new WorkLoop({
    serverUrl: i < k ? s0.url : s1.url, ...(i < k ? {} : { servers: [s0.url] }), slots: 2, runner,
    hello: { kind: 'node', backends: ['cpu'], agent: 'tabgrid-bench scale-out' }, bind: loopbacks(i),
    onSwitch: () => { if (killedAt && i >= k) switched[i - k] ??= performance.now() - killedAt; },
  }));
  const onS1 = loops.slice(k);
  try {
    const items = 40_000;
    const ids = await upload(s0.api, mlpModel(4, 16, 3, 7), { x: writeNpy('float32', [items, 4], floatData(11, items * 4)) });
    const job = await s0.api.createJob({ model: ids.model, inputs: ids.inputs, batchSize: 1, replicas: 1, name: 'scale-out failover' });
    for (const l of loops) l.start();
    const idOf = async (s: BenchServer) => (await sql.query<{ id: string }>(
      'SELECT id FROM servers WHERE alive ORDER BY (url = $1) DESC, started_at DESC LIMIT 1', [s.url])).rows[0]!.id;
    const [id0, id1] = [await idOf(s0), await idOf(s1)];
    const heldBy1 = async () => (await sql.query<{ job_id: string; slice: number }>(
      'SELECT job_id, slice FROM slices WHERE server_id = $1 AND NOT done', [id1])).rows;
    const deadline = Date.now() + 90_000;
    while (!(loops.every((l) => l.status.tasksDone > 5) && (await heldBy1()).length > 0)) {
      if (Date.now() > deadline) throw new Error(`workers did not start: tasks done ${loops.map((l) => l.status.tasksDone).join(', ')}; last errors ${loops.map((l) => l.status.lastError).join(' | ')}`);
      await sleep(50);
    }
    const done0 = sum(loops.map((l) => l.status.tasksDone));
    await sleep(1000);
    const ratePerSecondBefore = sum(loops.map((l) => l.status.tasksDone)) - done0;
    const held = await heldBy1();
    killedAt = performance.now();
    s1.child.proc.kill('SIGKILL');
    const since = () => performance.now() - killedAt;
    // Acks server 1 sent just before it died may still be on their way: a task counts as done again only from here.
    await sleep(200);
    const before = onS1.map((l) => l.status.tasksDone);
    let freedMs: number | null = null;
    let firstClaimMs: number | null = null;
    let allClaimedMs: number | null = null;
    let claimed = 0;
    const workerBackMs: (number | null)[] = onS1.map(() => null);
    const until = performance.now() + opt['failover-timeout'] * 1000;
    while (performance.now() < until && (allClaimedMs === null || workerBackMs.includes(null))) {
      onS1.forEach((l, i) => { if (workerBackMs[i] === null && l.status.tasksDone > before[i]!) workerBackMs[i] = since(); });
      const { rows: [c] } = await sql.query<{ by1: number; by0: number; done: number }>(`SELECT count(*) FILTER (WHERE server_id = $1)::int AS by1,
        count(*) FILTER (WHERE server_id = $2)::int AS by0, count(*) FILTER (WHERE done)::int AS done
        FROM slices WHERE (job_id, slice) IN (SELECT * FROM unnest($3::text[], $4::int[]))`,
      [id1, id0, held.map((h) => h.job_id), held.map((h) => h.slice)]);
      const t = since();
      if (freedMs === null && c!.by1 === 0) freedMs = t;
      if (firstClaimMs === null && c!.by0 + c!.done > 0) firstClaimMs = t;
      claimed = c!.by0 + c!.done;
      if (allClaimedMs === null && claimed === held.length) allClaimedMs = t;
      await sleep(20);
    }
    await s0.api.cancelJob(job.id).catch(() => {});
    return { heldSlices: held.length, freedMs, firstClaimMs, allClaimedMs, claimed, switchMs: switched, workerBackMs, ratePerSecondBefore };
  } finally {
    for (const l of loops) l.stop();
    for (const r of runners) await r.close();
    await sql.end();
    await s1.stop();
    await s0.stop();
  }
}

if (!havePostgres()) throw new Error('PostgreSQL 15 is not installed (see test/helpers/pg-cluster.ts: PG_BIN)');
say(`scale-out: ${opt.clients} clients x ${opt.inflight} in flight, ${opt.bytes} B a task; ${opt.warmup} s warm-up + ${opt.seconds} s per window; N = 1..${opt.servers}`);
say(`machine: ${machineLine()}`);
const cluster = await startPgCluster();
const monitor = await connect(cluster.url);
let report: Record<string, unknown>;
try {
  const cpuOf = PgCpu.fromBackend((await monitor.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
  const bareA = await bare('bare A');
  const phases: Phase[] = [];
  for (let n = 1; n <= opt.servers; n++) phases.push(await servers(cluster, monitor, cpuOf, n));
  const bareB = await bare('bare B');
  say('failover: 2 servers, time to live 2 s, server 1 SIGKILLed ...');
  const fo = await failover(cluster);
  const ms = (x: number | null) => (x === null ? `not within ${opt['failover-timeout']} s` : fmt.ms(x));
  say(`failover   server 1 held ${fo.heldSlices} open slices; freed (declared dead) after ${ms(fo.freedMs)}, first claimed by server 0 after ${ms(fo.firstClaimMs)}, `
    + `all ${fo.heldSlices} claimed or finished after ${ms(fo.allClaimedMs)} (${fo.claimed} by the end)`);
  say(`           server 1's workers (given server 0's URL): moved after ${fo.switchMs.map(ms).join(', ')}; completed a task again after ${fo.workerBackMs.map(ms).join(', ')} `
    + `(all workers did ${fo.ratePerSecondBefore} tasks/s before)`);

  const limit = (bareA.rate + bareB.rate) / 2;
  const r1 = phases[0]!;
  say();
  say(`limit (mean of bare A and B): ${fmt.rate(limit)} round trips/s (A/B differ by ${fmt.pct(Math.abs(bareA.rate - bareB.rate) / limit)})`);
  say(`dispatch ratio, 1 server on PostgreSQL: ${fmt.rate(r1.rate)} / ${fmt.rate(limit)} = ${fmt.ratio(r1.rate / limit)} (target >= 0.3)`);
  const dbCores = opt['db-cores'];
  say();
  say('estimated capacity of N servers on N machines, the database on a machine of its own:');
  say('  S = server CPU per result (all N servers\' CPU / results), B = database backends\' CPU per result, D = all the database\'s CPU per result');
  say('  per-server ceiling = 1 core / (S + B): one core per server (its main thread); the store is synchronous (the thread waits on each query),');
  say('    so the backend\'s work for a result is counted as time on the server\'s path (network round trips not counted: loopback here)');
  say(`  database ceiling = ${dbCores} cores (--db-cores) / D; capacity(N) = min(N x per-server ceiling, database ceiling), with S, B, D as measured with N servers`);
  const capacity = phases.map((p) => {
    const S = usPer(sum(p.serverCores), p.rate);
    const B = usPer(p.db.backendCores, p.rate);
    const D = usPer(p.db.cores, p.rate);
    const perServer = 1e6 / (S + B);
    const dbCeiling = (dbCores * 1e6) / D;
    const cap = Math.min(p.servers * perServer, dbCeiling);
    say(`  N = ${p.servers}: S ${S.toFixed(0)} µs, B ${B.toFixed(0)} µs, D ${D.toFixed(0)} µs -> per server 1e6 / ${(S + B).toFixed(0)} = ${fmt.rate(perServer)}/s, `
      + `database ${dbCores}e6 / ${D.toFixed(0)} = ${fmt.rate(dbCeiling)}/s -> capacity min(${p.servers} x ${fmt.rate(perServer)}, ${fmt.rate(dbCeiling)}) = ${fmt.rate(cap)} results/s `
      + `(${cap === dbCeiling ? 'the database bounds it' : 'the servers bound it'}; the database would bound from N = ${Math.ceil(dbCeiling / perServer)})`);
    return {
      servers: p.servers, serverUsPerResult: Math.round(S), dbBackendUsPerResult: Math.round(B), dbUsPerResult: Math.round(D),
      perServerCeiling: Math.round(perServer), dbCeiling: Math.round(dbCeiling), capacity: Math.round(cap),
    };
  });
  const [c1] = capacity;
  say(`  with the costs measured at N = 1 (at N > 1 here, the servers' fixed costs, such as the cluster's ticks, fall on fewer results as the shared cores run out): `
    + `capacity(N) = min(N x ${fmt.rate(c1!.perServerCeiling)}, ${fmt.rate(c1!.dbCeiling)}): `
    + [1, 2, 4, 8, 16].map((n) => `${n}: ${fmt.rate(Math.min(n * c1!.perServerCeiling, c1!.dbCeiling))}`).join(', '));
  say('  assumptions: each server alone on its machine with a core for itself; the database\'s CPU scales over its cores (each server has connections of its own);');
  say('  this cluster runs with fsync off (a throwaway one), so a durable database\'s commit latency and disk are not in D; the workers are elsewhere;');
  say(`  the per-result costs do not grow past N = ${opt.servers} faster than they did up to it. Here all the servers and the database share ${machineLine().split(',')[0]}.`);

  report = {
    clients: opt.clients, inflight: opt.inflight, bytes: opt.bytes, seconds: opt.seconds, canaryRate: opt['canary-rate'], dbCores,
    bareA: Math.round(bareA.rate), bareB: Math.round(bareB.rate), limit: Math.round(limit),
    serverUsPerBareRoundTrip: Math.round((usPer(bareA.serverCores, bareA.rate) + usPer(bareB.serverCores, bareB.rate)) / 2),
    ratioPg1: Number((r1.rate / limit).toFixed(3)),
    phases: phases.map((p) => ({
      servers: p.servers, committedPerSecond: Math.round(p.rate), perServer: p.perServer.map(Math.round), serverUsPerResult: Math.round(usPer(sum(p.serverCores), p.rate)),
      dbUsPerResult: Math.round(usPer(p.db.cores, p.rate)), dbBackendUsPerResult: Math.round(usPer(p.db.backendCores, p.rate)),
      xactsPerResult: Number(p.xactsPerResult.toFixed(3)), serverCores: p.serverCores.map((c) => Number(c.toFixed(2))),
      dbCores: Number(p.db.cores.toFixed(2)), loadCores: Number(p.loadCores.toFixed(2)), otherCores: Number(p.otherCores.toFixed(2)), failed: p.failed,
    })),
    capacity,
    failover: {
      ttlMs: TTL_MS, heldSlices: fo.heldSlices, freedMs: fo.freedMs && Math.round(fo.freedMs), firstClaimMs: fo.firstClaimMs && Math.round(fo.firstClaimMs),
      allClaimedMs: fo.allClaimedMs && Math.round(fo.allClaimedMs), switchMs: fo.switchMs.map((x) => x && Math.round(x)),
      workerBackMs: fo.workerBackMs.map((x) => x && Math.round(x)),
    },
  };
} finally {
  await monitor.end();
  cluster.stop();
}
result('scale-out', report);
