/**
 * Figure 3, scale: the server's memory per connected idle worker and the time to assign a task with that
 * many connected; and a data set of a million small items taken in, run through and returned, with the
 * server's peak RSS beside the data set's size.
 *
 *   npm run bench:scale -- [--connections 1000,5000] [--items 1000000] [--width 16]
 *
 * Idle workers: one client process opens the connections (websocket), each says worker:hello and asks for
 * 2 slots, so the server remembers its demand. Memory is the server's after a full GC (it runs with
 * --expose-gc), minus the same before any connection. Then a job of `--assign-tasks` tasks arrives
 * (replicas 1, canaryRate 0): the time from POST /jobs to the first and the last task:assign push, the
 * POST's own latency (job creation runs the dispatch), and one work:request round trip.
 * Million items: float32 [items, width] uploaded as one .npy, batch `--batch`, replicas 1, canaryRate 0, fast
 * fake workers (Identity model), results downloaded as .npy; the server's peak RSS (VmHWM) after each step.
 */
import fs from 'node:fs';
import path from 'node:path';
import { identityModel, floatNpy } from './lib/models.js';
import { BENCH, Child, type Msg, ROOT, memory, sleep } from './lib/proc.js';
import { summarizeProfile } from './profile-summary.js';
import { fmt, machineLine, numericFlags, result, say } from './lib/report.js';
import { type BenchServer, startServer, upload } from './lib/tabgrid.js';

const { n: opt, s: flag } = numericFlags('npm run bench:scale --', {
  items: { default: 1_000_000, min: 1000, max: 20_000_000, help: 'items in the large data set' },
  width: { default: 16, min: 1, max: 1024, help: 'float32 values per item' },
  batch: { default: 1000, min: 1, max: 100_000, help: 'items per task for the large data set' },
  workers: { default: 8, min: 1, max: 200, help: 'fake workers for the large data set' },
  'assign-tasks': { default: 100, min: 1, max: 100_000, help: 'tasks in the job that arrives while the idle workers wait' },
  parallel: { default: 100, min: 1, max: 1000, help: 'connections opened at once' },
  timeout: { default: 300, min: 10, max: 3600, help: 'seconds before the large job is given up' },
  'connect-seconds': { default: 90, min: 5, max: 1800, help: 'seconds allowed to open each step of idle connections' },
}, {
  connections: { type: 'string', default: '1000,5000', help: 'idle connection counts to measure, comma-separated, ascending' },
  'skip-idle': { type: 'boolean', help: 'skip the idle connections part' },
  'skip-items': { type: 'boolean', help: 'skip the million items part' },
  profile: { type: 'boolean', help: 'run the idle-workers server under node --cpu-prof and summarise the profile' },
});

const LIB = path.join(BENCH, 'lib');
const PROFILE_DIR = path.join(ROOT, 'test-results', 'bench');
interface Mem extends Msg { type: string; collected: boolean; rss: number; heapUsed: number; external: number; arrayBuffers: number }

async function serverMemory(server: BenchServer): Promise<Mem> {
  // Two collections with a pause between: sockets closing and timers firing free more on the second.
  await server.child.ask<Mem>({ type: 'memory' });
  await sleep(500);
  return server.child.ask<Mem>({ type: 'memory' });
}

interface IdleFigure {
  wanted?: number; connections: number; connectSeconds: number; rssPerWorker: number; heapPerWorker: number; postMs: number; firstAssignMs: number;
  lastAssignMs: number; tasksAssigned: number; requestMs: number;
}

async function idleWorkers(counts: number[]): Promise<IdleFigure[]> {
  const before = new Set(fs.existsSync(PROFILE_DIR) ? fs.readdirSync(PROFILE_DIR) : []);
  const server = await startServer({ nodeArgs: ['--expose-gc'], profileDir: flag.profile ? PROFILE_DIR : undefined });
  const clients = new Child(path.join(LIB, 'idle-clients.ts'), [], { label: 'idle-clients' });
  const out: IdleFigure[] = [];
  try {
    const width = 16;
    const ids = await upload(server.api, identityModel(width), { x: floatNpy(opt['assign-tasks'], width) });
    // Warm the server's connection path once, so lazily made things are not charged to the first workers.
    await clients.ask({ type: 'connect', url: server.url, total: 10, parallel: 10 });
    const base = await serverMemory(server);
    say(`server before the idle workers: RSS ${fmt.mib(base.rss)}, heap ${fmt.mib(base.heapUsed)}${base.collected ? '' : ' (no --expose-gc: not collected)'}`);
    for (const n of counts) {
      const c = await clients.ask<{ type: string; connected: number; failed: number; seconds: number }>(
        { type: 'connect', url: server.url, total: n, parallel: opt.parallel, seconds: opt['connect-seconds'] }, (opt['connect-seconds'] + 120) * 1000);
      if (c.connected < n) {
        say(`${String(n).padStart(6)} idle workers: only ${c.connected} connected in ${c.seconds.toFixed(0)} s (${c.failed} timed out); the server is saturated, see --profile`);
        out.push({
          connections: c.connected, connectSeconds: c.seconds, rssPerWorker: NaN, heapPerWorker: NaN, postMs: NaN, firstAssignMs: NaN, lastAssignMs: NaN,
          tasksAssigned: 0, requestMs: NaN, wanted: n,
        });
        break;
      }
      await sleep(1000);
      const m = await serverMemory(server);
      const added = c.connected - 10;
      const fig: IdleFigure = {
        connections: c.connected, connectSeconds: c.seconds,
        rssPerWorker: (m.rss - base.rss) / added, heapPerWorker: (m.heapUsed - base.heapUsed) / added,
        postMs: 0, firstAssignMs: 0, lastAssignMs: 0, tasksAssigned: 0, requestMs: 0,
      };
      // A job arrives while they all wait: time to the first and the last push.
      await clients.ask({ type: 'reset' });
      const t0 = performance.timeOrigin + performance.now();
      const job = await server.api.createJob({
        model: ids.model, inputs: ids.inputs, batchSize: 1, replicas: 1, canaryRate: 0, adaptive: false, name: `bench assign ${n}`,
      });
      fig.postMs = performance.timeOrigin + performance.now() - t0;
      let a = await clients.ask<{ type: string; pushes: number; tasks: number; first: number | null; last: number | null }>({ type: 'arrivals' });
      for (let i = 0; i < 100 && a.tasks < Math.min(job.tasks.total, 2 * c.connected); i++) {
        await sleep(50);
        a = await clients.ask({ type: 'arrivals' });
      }
      fig.firstAssignMs = (a.first ?? NaN) - t0;
      fig.lastAssignMs = (a.last ?? NaN) - t0;
      fig.tasksAssigned = a.tasks;
      await server.api.cancelJob(job.id);
      // One work:request round trip with this many connected and a job with free tasks.
      const more = await server.api.createJob({
        model: ids.model, inputs: ids.inputs, batchSize: 1, replicas: 1, canaryRate: 0, adaptive: false, name: `bench request ${n}`,
      });
      const times: number[] = [];
      for (let i = 0; i < 5; i++) times.push((await clients.ask<{ type: string; ms: number }>({ type: 'request', index: i }, 60_000)).ms);
      fig.requestMs = times.sort((x, y) => x - y)[2];
      await server.api.cancelJob(more.id);
      say(`${String(c.connected).padStart(6)} idle workers (connected in ${c.seconds.toFixed(1)} s): RSS +${fmt.kib(fig.rssPerWorker)} per worker, heap +${fmt.kib(fig.heapPerWorker)}; `
        + `job of ${job.tasks.total} tasks: POST ${fmt.ms(fig.postMs)}, first push ${fmt.ms(fig.firstAssignMs)}, last ${fmt.ms(fig.lastAssignMs)} (${fig.tasksAssigned} tasks pushed); `
        + `work:request round trip ${fmt.ms(fig.requestMs)}`);
      out.push(fig);
    }
  } finally {
    await clients.ask({ type: 'close' }).catch(() => {});
    await clients.stop();
    await server.stop();
  }
  if (flag.profile) {
    const file = fs.readdirSync(PROFILE_DIR).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f) && !before.has(f))[0];
    if (file) for (const line of summarizeProfile(path.join(PROFILE_DIR, file), { top: 15 }).lines) say(line);
  }
  return out;
}

interface ItemsFigure { items: number; datasetBytes: number; baseRss: number; peakAfterUpload: number; peakAfterRun: number; peakAfterResults: number; runSeconds: number; resultBytes: number }

async function millionItems(): Promise<ItemsFigure> {
  const server = await startServer();
  const load = new Child(path.join(LIB, 'fake-workers.ts'), [], { label: 'fake-workers' });
  try {
    const pid = server.child.pid;
    await sleep(500);
    const baseRss = memory(pid).rss;
    const npy = floatNpy(opt.items, opt.width);
    const model = await server.api.uploadModel(identityModel(opt.width));
    const ds = await server.api.uploadDataset(npy);
    const peakAfterUpload = memory(pid).peak;
    say(`data set: ${opt.items.toLocaleString('en-US')} items x ${opt.width} float32 = ${fmt.mib(npy.byteLength)}; server RSS before ${fmt.mib(baseRss)}, peak after upload ${fmt.mib(peakAfterUpload)}`);
    await load.ask({ type: 'start', url: server.url, clients: opt.workers, slots: 2, output: 'y' });
    const t0 = performance.now();
    const job = await server.api.createJob({ model: model.hash, inputs: { x: ds.hash }, batchSize: opt.batch, replicas: 1, canaryRate: 0, adaptive: false, name: 'bench million' });
    const deadline = Date.now() + opt.timeout * 1000;
    let view = job;
    while (view.status === 'running') {
      if (Date.now() > deadline) throw new Error(`million-item job timed out: ${view.tasks.done}/${view.tasks.total} tasks`);
      await sleep(200);
      view = await server.api.getJob(job.id);
    }
    const runSeconds = (performance.now() - t0) / 1000;
    if (view.status !== 'completed') throw new Error(`million-item job ${view.status}: ${view.error ?? ''}`);
    const peakAfterRun = memory(pid).peak;
    say(`ran ${view.tasks.total} tasks of ${opt.batch} items in ${runSeconds.toFixed(1)} s (${fmt.rate(opt.items / runSeconds)} items/s); peak RSS ${fmt.mib(peakAfterRun)}`);
    await load.ask({ type: 'stop' });
    const out = await server.api.result(job.id, 'y');
    const peakAfterResults = memory(pid).peak;
    say(`results: ${fmt.mib(out.byteLength)} .npy; peak RSS after the download ${fmt.mib(peakAfterResults)}`);
    return { items: opt.items, datasetBytes: npy.byteLength, baseRss, peakAfterUpload, peakAfterRun, peakAfterResults, runSeconds, resultBytes: out.byteLength };
  } finally {
    await load.stop();
    await server.stop();
  }
}

say(`scale: machine ${machineLine()}`);
const counts = String(flag.connections).split(',').map(Number).filter((n) => Number.isInteger(n) && n > 10 && n <= 15_000);
const idle = flag['skip-idle'] ? [] : await idleWorkers(counts);
const items = flag['skip-items'] ? null : await millionItems();
if (items) {
  const held = items.peakAfterResults - items.baseRss;
  say(`peak RSS over the start: ${fmt.mib(held)} = ${(held / items.datasetBytes).toFixed(2)}x the data set `
    + `(upload +${fmt.mib(items.peakAfterUpload - items.baseRss)}, run +${fmt.mib(items.peakAfterRun - items.baseRss)}, results +${fmt.mib(items.peakAfterResults - items.baseRss)})`);
}
result('scale', {
  idle: idle.map((f) => ({
    ...(f.wanted ? { wanted: f.wanted, connectSeconds: Math.round(f.connectSeconds) } : {}),
    connections: f.connections, rssKiBPerWorker: Number((f.rssPerWorker / 1024).toFixed(1)), heapKiBPerWorker: Number((f.heapPerWorker / 1024).toFixed(1)),
    postMs: Number(f.postMs.toFixed(1)), firstAssignMs: Number(f.firstAssignMs.toFixed(1)), lastAssignMs: Number(f.lastAssignMs.toFixed(1)), requestMs: Number(f.requestMs.toFixed(2)),
  })),
  ...(items ? {
    items: items.items, datasetMiB: Number((items.datasetBytes / 2 ** 20).toFixed(1)), baseRssMiB: Number((items.baseRss / 2 ** 20).toFixed(1)),
    peakUploadMiB: Number((items.peakAfterUpload / 2 ** 20).toFixed(1)), peakRunMiB: Number((items.peakAfterRun / 2 ** 20).toFixed(1)),
    peakResultsMiB: Number((items.peakAfterResults / 2 ** 20).toFixed(1)), itemsPerSecond: Math.round(items.items / items.runSeconds),
  } : {}),
});
