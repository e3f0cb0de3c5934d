/**
 * Figure 4, end to end: one headless worker (`tabgrid worker`, onnxruntime-node) against four on the same
 * job, through the real server; the throughput ratio, and the server's own CPU share while they work.
 *
 *   npm run bench:e2e -- [--tasks 200] [--width 512] [--layers 8] [--batch 64] [--workers 4]
 *
 * Each phase starts its workers as separate processes (the real CLI), waits until they are connected,
 * then submits the job (replicas 1, since one worker is one volunteer; canaries at the product default,
 * so the server computes known answers too) and times it from submission to completion.
 * On this 2-core machine onnxruntime-node already uses both cores in one worker, so four workers share
 * the same two cores: the ratio shows what the network adds or costs, not more hardware.
 *
 * Then bare socket.io round trips (as many clients as workers, 2 in flight each, a small binary payload) in the
 * same run, for the job's tasks/s over bare round trips/s; and each headless worker's own CPU per task. With a
 * trivial model (`--tasks 3000 --width 8 --layers 1 --batch 1`) that is what the network itself costs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { denseChainModel, floatNpy } from './lib/models.js';
import { Child, CpuWindow, ROOT, cpuSeconds, sleep } from './lib/proc.js';
import { summarizeProfile } from './profile-summary.js';
import { fmt, machineLine, numericFlags, result, say } from './lib/report.js';
import { type BenchServer, startServer, upload } from './lib/tabgrid.js';

const { n: opt, s: flag } = numericFlags('npm run bench:e2e --', {
  tasks: { default: 200, min: 4, max: 100_000, help: 'tasks per job' },
  width: { default: 512, min: 8, max: 4096, help: 'dense layer width' },
  layers: { default: 8, min: 1, max: 64, help: 'dense layers' },
  batch: { default: 64, min: 1, max: 4096, help: 'items per task' },
  workers: { default: 4, min: 2, max: 32, help: 'workers in the second phase' },
  slots: { default: 0, min: 0, max: 16, help: 'tasks each worker holds at once (tabgrid worker --slots; 0: the worker\'s own choice)' },
  threads: { default: 0, min: 0, max: 256, help: 'onnxruntime threads per run in each worker (tabgrid worker --threads; 0: its default, every core)' },
  'canary-rate': { default: 0.02, min: 0, max: 0.5, help: 'known-answer share of tasks' },
  timeout: { default: 300, min: 10, max: 3600, help: 'seconds per phase before giving up' },
  'bare-seconds': { default: 3, min: 1, max: 60, help: 'seconds of bare socket.io round trips to compare with' },
}, {
  profile: { type: 'boolean', help: 'run the server under node --cpu-prof and summarise its profile (both phases)' },
  'profile-dir': { type: 'string', help: 'where the .cpuprofile goes (default test-results/bench)' },
});

/** Bare socket.io round trips per second with `clients` connections of 2 in flight each, `bytes` per message. */
async function bareRoundTrips(clients: number, bytes: number): Promise<number> {
  const lib = path.join(ROOT, 'bench', 'lib');
  const server = new Child(path.join(lib, 'bare-server.ts'), [], { label: 'bare-server' });
  const { port } = await server.next<{ type: string; port: number }>('ready');
  const load = new Child(path.join(lib, 'bare-clients.ts'), [], { label: 'bare-clients' });
  try {
    await load.ask({ type: 'start', url: `http://127.0.0.1:${port}`, clients, inflight: 2, bytes });
    await sleep(1000);
    const a = await load.ask<{ type: string; count: number; t: number }>({ type: 'mark' });
    await sleep(opt['bare-seconds'] * 1000);
    const b = await load.ask<{ type: string; count: number; t: number }>({ type: 'mark' });
    await load.ask({ type: 'stop' });
    return (b.count - a.count) / ((b.t - a.t) / 1000);
  } finally {
    await load.stop();
    await server.stop();
  }
}

interface Phase { workers: number; seconds: number; tasksPerSecond: number; itemsPerSecond: number; serverCores: number; workerCores: number; otherCores: number; serverCpuSeconds: number }

function startWorker(url: string): ChildProcess {
  const slots = opt.slots > 0 ? ['--slots', String(opt.slots)] : [];
  const threads = opt.threads > 0 ? ['--threads', String(opt.threads)] : [];
  const p = spawn(process.execPath, [path.join(ROOT, 'bin', 'tabgrid.js'), 'worker', '--server', url, ...slots, ...threads], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  p.stderr?.setEncoding('utf8');
  p.stderr?.on('data', (s: string) => {
    for (const line of s.split('\n')) if (/error|refused|failed/i.test(line)) process.stderr.write(`  [worker ${p.pid}] ${line}\n`);
  });
  return p;
}

async function phase(server: BenchServer, ids: { model: string; inputs: Record<string, string> }, n: number): Promise<Phase> {
  const workers = Array.from({ length: n }, () => startWorker(server.url));
  try {
    const deadline = Date.now() + 60_000;
    while (((await (await fetch(`${server.url}/api/v1/health`)).json()) as { workers: number }).workers < n) {
      if (Date.now() > deadline) throw new Error(`only some of ${n} workers connected`);
      await sleep(100);
    }
    const cpu = new CpuWindow([server.child.pid, ...workers.map((w) => w.pid!)]);
    const serverCpu0 = cpuSeconds(server.child.pid);
    const t0 = performance.now();
    const job = await server.api.createJob({
      model: ids.model, inputs: ids.inputs, batchSize: opt.batch, replicas: 1, adaptive: false, canaryRate: opt['canary-rate'], name: `bench e2e x${n}`,
    });
    const end = Date.now() + opt.timeout * 1000;
    let view = job;
    while (view.status === 'running') {
      if (Date.now() > end) throw new Error(`phase with ${n} workers timed out: ${view.tasks.done}/${view.tasks.total}`);
      await sleep(100);
      view = await server.api.getJob(job.id);
    }
    const seconds = (performance.now() - t0) / 1000;
    if (view.status !== 'completed') throw new Error(`job ${view.status}: ${view.error ?? ''}`);
    const [serverCores, ...each] = cpu.cores();
    const p: Phase = {
      workers: n, seconds, tasksPerSecond: view.tasks.total / seconds, itemsPerSecond: view.items / seconds,
      serverCores, workerCores: each.reduce((a, b) => a + b, 0), otherCores: cpu.others(), serverCpuSeconds: cpuSeconds(server.child.pid) - serverCpu0,
    };
    say(`${String(n).padStart(2)} worker${n > 1 ? 's' : ' '}: ${view.tasks.total} tasks in ${seconds.toFixed(1)} s = ${fmt.rate(p.tasksPerSecond)} tasks/s `
      + `(${view.replicasIssued} replicas); cpu: server ${serverCores.toFixed(2)} cores (${fmt.pct(serverCores / 2)} of the machine), `
      + `workers ${p.workerCores.toFixed(2)}, others ${p.otherCores.toFixed(2)}`);
    return p;
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('exit', r)))));
  }
}

say(`end to end: dense ${opt.layers} x ${opt.width}x${opt.width}, ${opt.tasks} tasks of ${opt.batch} items; 1 worker, then ${opt.workers}`);
say(`machine: ${machineLine()}`);
const profileDir = flag.profile ? path.resolve(String(flag['profile-dir'] ?? path.join(ROOT, 'test-results', 'bench'))) : undefined;
const profilesBefore = new Set(profileDir && fs.existsSync(profileDir) ? fs.readdirSync(profileDir) : []);
const server = await startServer({ profileDir });
let one: Phase;
let many: Phase;
try {
  const ids = await upload(server.api, denseChainModel(opt.width, opt.layers), { x: floatNpy(opt.tasks * opt.batch, opt.width) });
  one = await phase(server, ids, 1);
  many = await phase(server, ids, opt.workers);
} finally {
  await server.stop();
}
if (profileDir) {
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (tsx's loader runs in another).
  const file = fs.readdirSync(profileDir).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f) && !profilesBefore.has(f)).map((f) => path.join(profileDir, f))[0];
  if (!file) throw new Error(`no .cpuprofile appeared in ${profileDir}`);
  say(`profile of the server over both phases: ${path.relative(ROOT, file)}`);
  for (const line of summarizeProfile(file, { top: 25 }).lines) say(line);
}
const ratio = many.tasksPerSecond / one.tasksPerSecond;
const bare = await bareRoundTrips(opt.workers, Math.max(16, opt.batch * opt.width * 4));
const workerMsPerTask = (p: Phase) => (p.workerCores * p.seconds * 1000) / opt.tasks;
say();
say(`${opt.workers} workers end to end over bare socket.io: ${fmt.rate(many.tasksPerSecond)} tasks/s / ${fmt.rate(bare)} round trips/s = ${fmt.ratio(many.tasksPerSecond / bare)} (target >= 0.1 with a trivial model)`);
say(`headless worker CPU per task: ${workerMsPerTask(one).toFixed(2)} ms (1 worker), ${workerMsPerTask(many).toFixed(2)} ms (${opt.workers})`);
say(`throughput ratio ${opt.workers} workers / 1: ${fmt.ratio(ratio)}; server CPU per task: ${(one.serverCpuSeconds * 1000 / opt.tasks).toFixed(1)} ms (1 worker), `
  + `${(many.serverCpuSeconds * 1000 / opt.tasks).toFixed(1)} ms (${opt.workers})`);
/** A phase's figures, rounded for the RESULT line. */
function figures(p: typeof one) {
  return {
    seconds: Number(p.seconds.toFixed(2)), tasksPerSecond: Number(p.tasksPerSecond.toFixed(1)), serverCores: Number(p.serverCores.toFixed(3)),
    workerCores: Number(p.workerCores.toFixed(2)), otherCores: Number(p.otherCores.toFixed(2)),
  };
}

result('end-to-end', {
  tasks: opt.tasks, batch: opt.batch, width: opt.width, layers: opt.layers, workers: opt.workers, threads: opt.threads, ratio: Number(ratio.toFixed(3)),
  bareRoundTripsPerSecond: Math.round(bare), overBare: Number((many.tasksPerSecond / bare).toFixed(3)),
  workerMsPerTask: { one: Number(workerMsPerTask(one).toFixed(3)), many: Number(workerMsPerTask(many).toFixed(3)) },
  one: figures(one),
  many: figures(many),
});
