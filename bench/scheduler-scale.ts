/**
 * The scheduler and its store at scale, in one process (no sockets: what the server does per result itself).
 *
 *   npm run bench:scheduler -- [--tasks 1000000] [--workers 50] [--compare 50000]
 *
 * 1. A job of `--tasks` one-item tasks (replicas 1) is created over a SQLite file: time, and the server's memory
 *    per pending task (heap and RSS growth over the job's creation, after a GC).
 * 2. `--workers` vetted volunteers run it in turns like the socket layer's (one transaction per turn, a savepoint
 *    per event, the next task leased on each result): results committed per second in each tenth of the job, and
 *    the last tenth's rate over the second's (the store filling up must not slow it down).
 * 3. Halfway, the server "restarts": the store is closed and reopened, the memory rebuilt, and the time until the
 *    first lease is handed out is measured.
 * 4. The same loop over the store alone (the design before the state moved into memory) on a job of `--compare`
 *    tasks, against the in-memory state on a job of the same size: the ratio of results per second.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { FakeClock } from '../server/scheduler/clock.js';
import { Scheduler } from '../server/scheduler/scheduler.js';
import { LiveStore } from '../server/state/live-store.js';
import { SqliteStore } from '../server/store/sqlite-store.js';
import type { JobRow, Store, TaskRow } from '../server/store/store.js';
import type { Tensor } from '../shared/tensor.js';
import { fmt, machineLine, numericFlags, result, say } from './lib/report.js';

const { n: opt } = numericFlags('npm run bench:scheduler --', {
  tasks: { default: 1_000_000, min: 1_000, max: 10_000_000, help: 'tasks in the big job' },
  workers: { default: 50, min: 1, max: 10_000, help: 'volunteers running it, 2 slots each' },
  compare: { default: 50_000, min: 1_000, max: 1_000_000, help: 'tasks in the jobs of the store-only comparison' },
});

const MODEL = 'a'.repeat(64);
const OUT: Tensor[] = [{ name: 'y', dtype: 'float32', dims: [1, 2], data: new Uint8Array(8) }];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-sched-'));
const gc = (globalThis as { gc?: () => void }).gc;

function openStore(file: string, live: boolean): Store {
  const sqlite = new SqliteStore(file);
  return live ? new LiveStore(sqlite) : sqlite;
}

function prepare(store: Store, workers: number): void {
  store.putModel({ hash: MODEL, size: 1, inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 2] }], outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 2] }], opsets: {}, weightBytes: 0, largestWeight: 0, createdAt: 0 });
  for (let i = 0; i < workers; i++) {
    const { id } = store.volunteerFor(`token-${i}`, `v${i}`, 0);
    store.updateVolunteer(id, { canaryPassed: 2, valid: 50, streak: 50 });
  }
}

function makeJob(store: Store, id: string, tasks: number): JobRow {
  const job: JobRow = {
    id, owner: 'k', name: null, model: MODEL, stageModels: [MODEL], inputs: [], items: tasks, batchSize: 1, replicas: 1, maxReplicas: 3,
    rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, status: 'running', error: null, createdAt: 1, finishedAt: null,
  };
  const rows: TaskRow[] = new Array(tasks);
  for (let b = 0; b < tasks; b++) {
    rows[b] = {
      id: `${id}-s0-t${b}`, jobId: id, stage: 0, model: MODEL, batch: b, itemStart: b, itemEnd: b + 1, status: 'pending', canary: false, ready: true,
      readyAt: 0, wanted: 1, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
    };
  }
  store.createJob(job, rows);
  return job;
}

function scheduler(store: Store, workers: number): { s: Scheduler; held: Map<string, string[]> } {
  const s = new Scheduler({
    store, clock: new FakeClock(), log: pino({ level: 'silent' }), config: { leaseMs: 60_000, maxFailures: 3, spotCheckRate: 0 }, taskInputs: () => [],
  });
  const held = new Map<string, string[]>();
  s.setEvents({ deliver: (w, t) => held.get(w)!.push(...t.map((x) => x.replicaId)), cancel: () => {} });
  for (let i = 0; i < workers; i++) {
    held.set(`w${i}`, []);
    s.connect(`w${i}`, `v${i}`, { origin: `10.0.${i >> 8}.${i & 255}` });
  }
  return { s, held };
}

/** Runs turns until `stopAt` results are in (or work runs out); returns results per second for each `every` results. */
function run(store: Store, s: Scheduler, held: Map<string, string[]>, stopAt: number, every: number): { done: number; rates: number[] } {
  for (const [w, list] of held) if (list.length === 0) for (const t of s.requestWork(w, 2)) list.push(t.replicaId);
  let done = 0;
  const rates: number[] = [];
  let mark = performance.now();
  let markDone = 0;
  while (done < stopAt) {
    let progress = false;
    store.transaction(() => {
      for (const [w, list] of held) {
        const id = list.shift();
        if (!id) continue;
        progress = true;
        store.transaction(() => {
          s.submitResult(w, id, OUT, { backend: 'wasm', runMs: 1 });
          for (const t of s.requestWork(w, 1)) list.push(t.replicaId);
        });
        done++;
        if (done - markDone >= every) {
          const now = performance.now();
          rates.push((done - markDone) / ((now - mark) / 1000));
          mark = now;
          markDone = done;
        }
      }
    });
    if (!progress) break;
  }
  return { done, rates };
}

say(`scheduler at scale: ${fmt.rate(opt.tasks)} tasks, ${opt.workers} workers x 2 slots, in one process`);
say(`machine: ${machineLine()}${gc ? '' : ' (run with node --expose-gc for the memory figure)'}`);

// 1. The big job.
const bigFile = path.join(dir, 'big.sqlite');
let store = openStore(bigFile, true);
prepare(store, opt.workers);
gc?.();
const heap0 = process.memoryUsage();
let t0 = performance.now();
makeJob(store, 'big', opt.tasks);
const createMs = performance.now() - t0;
gc?.();
const heap1 = process.memoryUsage();
const perTaskHeap = (heap1.heapUsed - heap0.heapUsed) / opt.tasks;
const perTaskRss = (heap1.rss - heap0.rss) / opt.tasks;
say(`job of ${fmt.rate(opt.tasks)} tasks created in ${(createMs / 1000).toFixed(1)} s; memory per pending task: ${perTaskHeap.toFixed(0)} B of heap, ${perTaskRss.toFixed(0)} B of RSS`);

// 2. First half, then a restart, then the second half.
let sch = scheduler(store, opt.workers);
const tenth = Math.floor(opt.tasks / 10);
const first = run(store, sch.s, sch.held, Math.floor(opt.tasks / 2), tenth);
store.close();
t0 = performance.now();
store = openStore(bigFile, true);
sch = scheduler(store, opt.workers);
sch.s.recoverLeases();
const firstLease = sch.s.requestWork('w0', 1);
const restartMs = performance.now() - t0;
sch.held.get('w0')!.push(...firstLease.map((t) => t.replicaId));
say(`restart with ${fmt.rate(opt.tasks - first.done)} tasks open: first lease ${restartMs.toFixed(0)} ms after reopening the store`);
const second = run(store, sch.s, sch.held, opt.tasks, tenth);
const rates = [...first.rates, ...second.rates];
say(`results committed per second, each tenth of the job: ${rates.map((r) => fmt.rate(r)).join(', ')}`);
const flat = rates[rates.length - 1]! / rates[1]!;
say(`last tenth / second tenth: ${flat.toFixed(2)} (target >= 0.9)`);
const counts = store.taskCounts('big');
store.close();

// 4. Store only (the design before) against the in-memory state, same job size.
const perSecond = (live: boolean) => {
  const file = path.join(dir, `cmp-${live ? 'live' : 'store'}.sqlite`);
  const st = openStore(file, live);
  prepare(st, opt.workers);
  makeJob(st, 'cmp', opt.compare);
  const { s, held } = scheduler(st, opt.workers);
  const start = performance.now();
  const { done } = run(st, s, held, opt.compare, opt.compare);
  const rate = done / ((performance.now() - start) / 1000);
  st.close();
  return rate;
};
const storeOnly = perSecond(false);
const live = perSecond(true);
say(`job of ${fmt.rate(opt.compare)} tasks: ${fmt.rate(live)} results/s with the state in memory, ${fmt.rate(storeOnly)} over the store alone (${(live / storeOnly).toFixed(1)}x)`);
fs.rmSync(dir, { recursive: true, force: true });

result('scheduler-scale', {
  tasks: opt.tasks, workers: opt.workers, createMs: Math.round(createMs), heapBytesPerTask: Math.round(perTaskHeap), rssBytesPerTask: Math.round(perTaskRss),
  restartMs: Math.round(restartMs), ratesPerTenth: rates.map(Math.round), flatRatio: Number(flat.toFixed(3)), done: counts.done,
  compareTasks: opt.compare, liveResultsPerSecond: Math.round(live), storeOnlyResultsPerSecond: Math.round(storeOnly), speedup: Number((live / storeOnly).toFixed(2)),
});
