/**
 * Figure 1, dispatch: replica results committed per second through the real TabGrid server (durable
 * SQLite store) by fast fake workers, as a fraction of bare socket.io request/ack round trips per second
 * with the same clients and messages in flight, both measured in this run on this machine.
 *
 *   npm run bench:dispatch -- [--clients 50] [--inflight 2] [--seconds 10] [--profile]
 *
 * Phases, each in fresh child processes (server and load in separate processes):
 *   bare A   bare socket.io server acking a message with `bytes` of binary; `clients` x `inflight` in flight
 *   protocol the fake workers against a server that only speaks the protocol (no checks, no store): the ceiling;
 *            the WorkLoop asks for the next task in each result (`next`), so it comes back on the result's ack
 *   lean     the same protocol from a minimal client (no WorkLoop): what the client side's own cost hides
 *   r1       TabGrid, Identity model, 1 item of `bytes` per task, replicas 1: each result one round trip of work
 *   r2       the same with replicas 2 (adaptive off): verified tasks per second
 *   bare B   the bare server again; the limit is the mean of A and B, so drift shows
 *   profile  (--profile) r1 again on a server run under node --cpu-prof, summarised by bench/profile-summary.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import { identityModel, floatNpy } from './lib/models.js';
import { BENCH, Child, CpuWindow, ROOT, sleep } from './lib/proc.js';
import { fmt, machineLine, numericFlags, result, say } from './lib/report.js';
import { JobFeeder, startServer, upload } from './lib/tabgrid.js';
import { summarizeProfile } from './profile-summary.js';

const { n: opt, s: flag } = numericFlags('npm run bench:dispatch --', {
  clients: { default: 50, min: 1, max: 2000, help: 'connected clients (fake workers) in each phase' },
  inflight: { default: 2, min: 1, max: 16, help: 'messages in flight per client; the fake workers\' slots' },
  bytes: { default: 1024, min: 4, max: 1 << 20, help: 'binary bytes per message (bare) and per task input and output (TabGrid)' },
  warmup: { default: 3, min: 0, max: 60, help: 'seconds of load before each measured window' },
  seconds: { default: 10, min: 1, max: 120, help: 'seconds measured per phase' },
  items: { default: 20_000, min: 100, max: 200_000, help: 'tasks per job (the feeder adds jobs as they drain)' },
  'canary-rate': { default: 0.02, min: 0, max: 0.5, help: 'known-answer share of tasks (0.02 is the product default)' },
}, {
  profile: { type: 'boolean', help: 'also run r1 on a server under node --cpu-prof and summarise the profile' },
  'profile-dir': { type: 'string', help: 'where the .cpuprofile goes (default test-results/bench)' },
  'skip-r2': { type: 'boolean', help: 'skip the replicas-2 phase' },
  'skip-piggyback': { type: 'boolean', help: 'skip the protocol-only phase driven by a minimal client (no WorkLoop)' },
});

const LIB = path.join(BENCH, 'lib');

interface Window { rate: number; count: number; seconds: number; serverCores: number; loadCores: number; otherCores: number }

/** Lets the load run for warmup, then measures `seconds` between two marks of the load child. */
async function measure<T>(load: Child, serverPid: number, probe: () => Promise<T> = async () => undefined as T): Promise<Window & { before: T; after: T }> {
  await sleep(opt.warmup * 1000);
  const [a, before] = await Promise.all([load.ask<{ type: string; count: number; t: number }>({ type: 'mark' }), probe()]);
  const cpu = new CpuWindow([serverPid, load.pid]);
  await sleep(opt.seconds * 1000);
  const [b, after] = await Promise.all([load.ask<{ type: string; count: number; t: number; errors?: string[] }>({ type: 'mark' }), probe()]);
  const [serverCores, loadCores] = cpu.cores();
  const otherCores = cpu.others();
  if (b.errors?.length) say(`  load reported: ${b.errors.join(' | ')}`);
  const seconds = (b.t - a.t) / 1000;
  return { rate: (b.count - a.count) / seconds, count: b.count - a.count, seconds, serverCores, loadCores, otherCores, before, after };
}

/** CPU of the server, of the load process and of everything else on the machine, in cores. */
function cpuNote(w: Window): string {
  return `cpu: server ${w.serverCores.toFixed(2)}, load ${w.loadCores.toFixed(2)}, others ${w.otherCores.toFixed(2)} cores`;
}

async function bare(label: string): Promise<Window> {
  const server = new Child(path.join(LIB, 'bare-server.ts'), [], { label: 'bare-server' });
  const { port } = await server.next<{ type: string; port: number }>('ready');
  const load = new Child(path.join(LIB, 'bare-clients.ts'), [], { label: 'bare-clients' });
  try {
    await load.ask({ type: 'start', url: `http://127.0.0.1:${port}`, clients: opt.clients, inflight: opt.inflight, bytes: opt.bytes });
    const w = await measure(load, server.pid);
    say(`${label.padEnd(10)} ${fmt.rate(w.rate).padStart(8)} round trips/s          ${cpuNote(w)}`);
    await load.ask({ type: 'stop' });
    return w;
  } finally {
    await load.stop();
    await server.stop();
  }
}

/** The worker protocol with nothing behind it (bench/lib/protocol-server.ts), driven by the same fake workers. */
async function protocolOnly(label: string, piggyback = false): Promise<Window> {
  const server = new Child(path.join(LIB, 'protocol-server.ts'), [String(opt.bytes)], { label: 'protocol-server' });
  const { port } = await server.next<{ type: string; port: number }>('ready');
  const load = new Child(path.join(LIB, 'fake-workers.ts'), [], { label: 'fake-workers' });
  try {
    await load.ask({ type: 'start', url: `http://127.0.0.1:${port}`, clients: opt.clients, slots: opt.inflight, output: 'y', piggyback });
    const w = await measure(load, server.pid);
    say(`${label.padEnd(10)} ${fmt.rate(w.rate).padStart(8)} results/s (protocol only, next task on the result's ack${piggyback ? ', minimal client' : ''}) ${cpuNote(w)}`);
    await load.ask({ type: 'stop' });
    return w;
  } finally {
    await load.stop();
    await server.stop();
  }
}

interface TabGridPhase extends Window { replicas: number; verifiedPerSecond: number; replicasIssuedPerSecond: number; failed: number }

/** One TabGrid server; for each replica setting, a fed job stream and one measured window. */
async function tabgrid(label: string, replicaSettings: number[], profileDir?: string): Promise<TabGridPhase[]> {
  const server = await startServer({ profileDir });
  const load = new Child(path.join(LIB, 'fake-workers.ts'), [], { label: 'fake-workers' });
  const out: TabGridPhase[] = [];
  const feeders: JobFeeder[] = [];
  try {
    const width = Math.max(1, Math.floor(opt.bytes / 4));
    const ids = await upload(server.api, identityModel(width), { x: floatNpy(opt.items, width) });
    await load.ask({ type: 'start', url: server.url, clients: opt.clients, slots: opt.inflight, output: 'y' });
    for (const replicas of replicaSettings) {
      for (const f of feeders) { f.stop(); await f.cancelAll(); }
      const base = (await load.ask<{ type: string; count: number }>({ type: 'mark' })).count;
      const feeder = new JobFeeder(server.api, {
        model: ids.model, inputs: ids.inputs, items: opt.items, batchSize: 1, replicas, adaptive: false, canaryRate: opt['canary-rate'], name: `bench r${replicas}`,
      }, Math.min(opt.items / 2, 5000), async () => ((await load.ask<{ type: string; count: number }>({ type: 'mark' })).count - base) / replicas);
      feeders.push(feeder);
      await feeder.start();
      const w = await measure(load, server.child.pid, async () => ({ ...(await feeder.progress()), t: performance.now() }));
      const seconds = (w.after.t - w.before.t) / 1000;
      const phase: TabGridPhase = {
        rate: w.rate, count: w.count, seconds: w.seconds, serverCores: w.serverCores, loadCores: w.loadCores, otherCores: w.otherCores, replicas,
        verifiedPerSecond: (w.after.done - w.before.done) / seconds,
        replicasIssuedPerSecond: (w.after.replicas - w.before.replicas) / seconds,
        failed: w.after.failed,
      };
      say(`${`${label} r${replicas}`.padEnd(10)} ${fmt.rate(phase.rate).padStart(8)} results committed/s   ${fmt.rate(phase.verifiedPerSecond).padStart(7)} tasks verified/s   `
        + `${cpuNote(phase)}${phase.failed ? `, ${phase.failed} tasks FAILED` : ''}`);
      out.push(phase);
    }
  } finally {
    for (const f of feeders) f.stop();
    await load.ask({ type: 'stop' }).catch(() => {});
    await load.stop();
    for (const f of feeders) await f.cancelAll();
    await server.stop();
  }
  return out;
}

say(`dispatch: ${opt.clients} clients x ${opt.inflight} in flight, ${opt.bytes} B binary per message; ${opt.warmup} s warm-up + ${opt.seconds} s per phase`);
say(`machine: ${machineLine()}`);
const bareA = await bare('bare A');
const proto = await protocolOnly('protocol');
const piggy = flag['skip-piggyback'] ? undefined : await protocolOnly('lean', true);
const phases = await tabgrid('tabgrid', flag['skip-r2'] ? [1] : [1, 2]);
const bareB = await bare('bare B');
const limit = (bareA.rate + bareB.rate) / 2;
const r1 = phases[0];
const r2 = phases[1];
const ratio = r1.rate / limit;
say();
say(`limit (mean of bare A and B): ${fmt.rate(limit)} round trips/s (A/B differ by ${fmt.pct(Math.abs(bareA.rate - bareB.rate) / limit)})`);
say(`dispatch ratio: ${fmt.rate(r1.rate)} / ${fmt.rate(limit)} = ${fmt.ratio(ratio)} (target >= 0.6)`);
const usPer = (w: Window) => (w.serverCores * 1e6) / w.rate;
say(`protocol ceiling (same fake workers, a server that only speaks the protocol, one round trip per task): ${fmt.rate(proto.rate)} results/s = ${fmt.ratio(proto.rate / limit)} of the limit, `
  + `${usPer(proto).toFixed(0)} µs server CPU per result`);
if (piggy) {
  say(`  from a minimal client instead of the WorkLoop: ${fmt.rate(piggy.rate)} results/s = ${fmt.ratio(piggy.rate / limit)} of the limit, `
    + `${usPer(piggy).toFixed(0)} µs server CPU per result`);
}
const bareUs = (usPer(bareA) + usPer(bareB)) / 2;
say(`server CPU per message: bare ${bareUs.toFixed(0)} µs per round trip, TabGrid ${usPer(r1).toFixed(0)} µs per committed result `
  + `(${(usPer(r1) / bareUs).toFixed(1)}x); CPU-normalised ratio ${fmt.ratio(bareUs / usPer(r1))}`);
if (r2) say(`replicas 2: ${fmt.rate(r2.verifiedPerSecond)} verified tasks/s (${fmt.ratio(r2.verifiedPerSecond / limit)} of the limit), ${fmt.rate(r2.rate)} results committed/s`);

let profile: ReturnType<typeof summarizeProfile> | undefined;
if (flag.profile) {
  const dir = path.resolve(String(flag['profile-dir'] ?? path.join(ROOT, 'test-results', 'bench')));
  const before = new Set(fs.existsSync(dir) ? fs.readdirSync(dir) : []);
  say();
  const [profiled] = await tabgrid('profiled', [1], dir);
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (tsx's loader runs in another).
  const file = fs.readdirSync(dir).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f) && !before.has(f)).map((f) => path.join(dir, f))[0];
  if (!file) throw new Error(`no .cpuprofile appeared in ${dir}`);
  say(`profile of the server under r1 load (${fmt.rate(profiled.rate)} results/s while profiled): ${path.relative(ROOT, file)}`);
  profile = summarizeProfile(file, { top: 25 });
  for (const line of profile.lines) say(line);
}

result('dispatch', {
  clients: opt.clients, inflight: opt.inflight, bytes: opt.bytes, seconds: opt.seconds, canaryRate: opt['canary-rate'],
  bareA: Math.round(bareA.rate), bareB: Math.round(bareB.rate), limit: Math.round(limit),
  protocolOnlyPerSecond: Math.round(proto.rate), protocolOnlyRatio: Number((proto.rate / limit).toFixed(3)), serverUsPerProtocolResult: Math.round(usPer(proto)),
  ...(piggy ? { piggybackPerSecond: Math.round(piggy.rate), piggybackRatio: Number((piggy.rate / limit).toFixed(3)), serverUsPerPiggybackResult: Math.round(usPer(piggy)) } : {}),
  committedPerSecond: Math.round(r1.rate), ratio: Number(ratio.toFixed(3)),
  serverUsPerBareRoundTrip: Math.round(bareUs), serverUsPerResult: Math.round(usPer(r1)), cpuNormalisedRatio: Number((bareUs / usPer(r1)).toFixed(3)),
  serverCoresR1: Number(r1.serverCores.toFixed(2)), loadCoresR1: Number(r1.loadCores.toFixed(2)),
  serverCoresBare: Number(((bareA.serverCores + bareB.serverCores) / 2).toFixed(2)),
  otherCores: Number(((bareA.otherCores + bareB.otherCores + r1.otherCores) / 3).toFixed(2)),
  ...(r2 ? { verifiedPerSecondR2: Math.round(r2.verifiedPerSecond), committedPerSecondR2: Math.round(r2.rate), ratioR2: Number((r2.verifiedPerSecond / limit).toFixed(3)) } : {}),
  ...(profile ? { profile: profile.file, profileTop: profile.top.slice(0, 10) } : {}),
});
