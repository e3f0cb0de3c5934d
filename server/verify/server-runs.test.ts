/**
 * The server's own runs: checks and canaries before audits, one answer per queued task, audits skipped while
 * the runs already take their share of a core, and a failure reported with the runtime's reason.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { floatData, mlpModel } from '../../test/helpers/models.js';
import { BlobStore } from '../store/blob-store.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { LiveStore } from '../state/live-store.js';
import type { JobRow, TaskRow } from '../store/store.js';
import type { Tensor } from '../../shared/tensor.js';
import { ServerRuns, type ServerRunSink } from './server-runs.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

function setup(opts: { auditCpuShare?: number; now?: () => number; refusals?: number; settled?: Set<string> } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-runs-'));
  dirs.push(dir);
  const store = new LiveStore(new SqliteStore(':memory:'));
  const blobs = new BlobStore(dir);
  const model = blobs.put(mlpModel(4, 8, 3, 5));
  const broken = blobs.put(new Uint8Array([1, 2, 3]));
  const job = { id: 'j', status: 'running' } as JobRow;
  store.createJob({ ...job, owner: 'k', name: null, model, stageModels: [model], inputs: [], items: 4, batchSize: 1, replicas: 2, maxReplicas: 3,
    rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, error: null, createdAt: 0, finishedAt: null }, []);
  const task = (id: string, m = model): TaskRow => ({
    id, jobId: 'j', stage: 0, model: m, batch: 0, itemStart: 0, itemEnd: 1, status: 'pending', canary: false, ready: true, readyAt: 0,
    wanted: 2, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
  });
  const heard: string[] = [];
  /** The order runs start in (each reads its task's inputs first). */
  const started: string[] = [];
  /** The first `refusals` answers handed over fail, as when the database is gone. */
  let refusals = opts.refusals ?? 0;
  const refuse = () => { if (refusals > 0) { refusals--; throw new Error('connect ECONNREFUSED'); } };
  const sink: ServerRunSink = {
    canaryReady: (id, out) => { refuse(); heard.push(`canary ${id} ${out ? 'ok' : 'none'}`); },
    serverChecked: (id, out, err) => { refuse(); heard.push(`check ${id} ${out ? `ok ${(out as Tensor[])[0]!.dims}` : `error ${err}`}`); },
    audited: (id) => heard.push(`audit ${id}`),
  };
  /** What the runs report to the event bus. */
  const reported: string[] = [];
  const runs = new ServerRuns({
    store, blobs, log: pino({ level: 'silent' }), auditCpuShare: opts.auditCpuShare ?? 1, now: opts.now, retryMs: 5,
    observer: { emit: (event, ...args: unknown[]) => reported.push([event, ...args.slice(0, 2)].join(' ')) },
    ...(opts.settled ? { waitsHere: (id: string) => !opts.settled!.has(id) } : {}),
    taskInputs: (_job, task) => {
      started.push(task.id);
      return [{ name: 'x', dtype: 'float32', dims: [1, 4], data: floatData(1, 4) }];
    },
  });
  runs.setSink(sink);
  return { runs, task, heard, broken, started, reported };
}

describe('ServerRuns', () => {
  it('runs checks and canaries before audits, four at a time, each task once', async () => {
    const s = setup();
    for (const id of ['a1', 'a2', 'a3', 'a4', 'a5']) expect(s.runs.audit(s.task(id))).toBe(true);
    expect(s.runs.check(s.task('c1'))).toBe(true);
    expect(s.runs.check(s.task('c1'))).toBe(false);
    s.runs.compute([s.task('k1')]);
    await s.runs.idle();
    // Four audits were already running when the others came; after them, checks and canaries go first.
    expect(s.started).toEqual(['a1', 'a2', 'a3', 'a4', 'c1', 'k1', 'a5']);
    expect(s.heard).toHaveLength(7);
    expect(s.heard).toContain('check c1 ok 1,3');
    expect(s.runs.stats).toMatchObject({ checks: 1, canaries: 1, audits: 5, failed: 0 });
  });

  it('passes over a check or known answer whose task was settled while it waited, never an audit', async () => {
    const settled = new Set<string>(['a1']);
    const s = setup({ settled });
    // Four audits take the four runs; the check and the known answer wait behind them, and their tasks settle meanwhile.
    for (const id of ['a1', 'a2', 'a3', 'a4']) s.runs.audit(s.task(id));
    s.runs.check(s.task('c1'));
    s.runs.check(s.task('c2'));
    s.runs.compute([s.task('k1'), s.task('k2')]);
    settled.add('c2').add('k2');
    await s.runs.idle();
    expect(s.started).toEqual(['a1', 'a2', 'a3', 'a4', 'c1', 'k1']);
    expect(s.heard.filter((h) => !h.startsWith('audit'))).toEqual(['check c1 ok 1,3', 'canary k1 ok']);
    expect(s.runs.stats).toMatchObject({ checks: 1, canaries: 1, audits: 4, stale: 2 });
    // Passed over, not remembered as queued: asked again, it is queued again.
    expect(s.runs.check(s.task('c2'))).toBe(true);
  });

  it('reports a task the server cannot run with the runtime\'s reason', async () => {
    const s = setup();
    s.runs.check(s.task('bad', s.broken));
    await s.runs.idle();
    expect(s.heard).toEqual([expect.stringMatching(/^check bad error .+/)]);
    expect(s.runs.stats.failed).toBe(1);
    expect(s.reported).toEqual(['server-run:done check false']);
  });

  it('applies a check\'s answer again when the store refused it, until it is taken', async () => {
    const s = setup({ refusals: 3 });
    s.runs.check(s.task('c1'));
    await s.runs.idle();
    await expect.poll(() => s.heard).toEqual(['check c1 ok 1,3']);
    expect(s.started).toEqual(['c1']); // computed once, applied four times
    expect(s.runs.stats.checks).toBe(1);
  });

  it('skips audits while its runs already take their share of a core', async () => {
    let t = 0;
    // Every run seems to take 5 s of a 10 s window: a share of 0.5.
    const s = setup({ auditCpuShare: 0.25, now: () => (t += 2_500) });
    s.runs.check(s.task('c1'));
    await s.runs.idle();
    expect(s.runs.audit(s.task('a1'))).toBe(false);
    expect(s.runs.stats.auditsSkipped).toBe(1);
    expect(s.reported).toEqual(['server-run:done check true', 'audit:skipped']);
    // Checks are never skipped.
    expect(s.runs.check(s.task('c2'))).toBe(true);
    await s.runs.idle();
    expect(s.heard).toEqual(['check c1 ok 1,3', 'check c2 ok 1,3']);
  });
});
